package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// mapFS builds a migrations directory from name → SQL.
func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, sql := range files {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return fsys
}

func load(t *testing.T, files map[string]string) []postgres.Migration {
	t.Helper()
	ms, err := postgres.LoadMigrations(mapFS(files), "migrations")
	if err != nil {
		t.Fatalf("LoadMigrations: %v", err)
	}
	return ms
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fsys     fstest.MapFS
		want     []string // "version:name" in order
		wantErrs []string // substrings of the error
	}{
		{
			name: "sorted numerically, not lexically",
			fsys: mapFS(map[string]string{"10_ten.sql": "SELECT 10", "0002_two.sql": "SELECT 2", "1_one.sql": "SELECT 1"}),
			want: []string{"1:one", "2:two", "10:ten"},
		},
		{
			name: "underscores stay in the name",
			fsys: mapFS(map[string]string{"0001_create_events_table.sql": "SELECT 1"}),
			want: []string{"1:create_events_table"},
		},
		{
			name: "other files and directories ignored",
			fsys: fstest.MapFS{
				"migrations/0001_a.sql":        {Data: []byte("SELECT 1")},
				"migrations/README.md":         {Data: []byte("notes")},
				"migrations/0002_b.sql.bak":    {Data: []byte("junk")},
				"migrations/old/0003_c.sql":    {Data: []byte("SELECT 3")},
				"elsewhere/0004_elsewhere.sql": {Data: []byte("SELECT 4")},
			},
			want: []string{"1:a"},
		},
		{
			name: "empty directory",
			fsys: fstest.MapFS{"migrations": {Mode: fs.ModeDir | 0o755}},
			want: nil,
		},
		{name: "no version", fsys: mapFS(map[string]string{"init.sql": ""}), wantErrs: []string{"init.sql", "NNNN_description.sql"}},
		{name: "no name", fsys: mapFS(map[string]string{"0001.sql": ""}), wantErrs: []string{"0001.sql", "NNNN_description.sql"}},
		{name: "version not a number", fsys: mapFS(map[string]string{"v1_init.sql": ""}), wantErrs: []string{"v1_init.sql"}},
		{name: "version zero", fsys: mapFS(map[string]string{"0000_init.sql": ""}), wantErrs: []string{"0000_init.sql"}},
		{name: "negative version", fsys: mapFS(map[string]string{"-1_init.sql": ""}), wantErrs: []string{"-1_init.sql"}},
		{
			name:     "duplicate version",
			fsys:     mapFS(map[string]string{"0001_a.sql": "SELECT 1", "1_b.sql": "SELECT 2"}),
			wantErrs: []string{"0001_a.sql", "1_b.sql", "share version 1"},
		},
		{name: "missing directory", fsys: fstest.MapFS{}, wantErrs: []string{"read migrations"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := postgres.LoadMigrations(tt.fsys, "migrations")
			if len(tt.wantErrs) > 0 {
				if err == nil {
					t.Fatalf("LoadMigrations = %v, want an error", ms)
				}
				for _, s := range tt.wantErrs {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadMigrations: %v", err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, fmt.Sprintf("%d:%s", m.Version, m.Name))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("loaded %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadMigrationsChecksum(t *testing.T) {
	t.Parallel()
	a := load(t, map[string]string{"0001_a.sql": "CREATE TABLE t (id int);"})
	b := load(t, map[string]string{"0001_a.sql": "CREATE TABLE t (id int);"})
	c := load(t, map[string]string{"0001_a.sql": "CREATE TABLE t (id bigint);"})
	if a[0].Checksum != b[0].Checksum {
		t.Fatal("same content, different checksums")
	}
	if a[0].Checksum == c[0].Checksum {
		t.Fatal("different content, same checksum")
	}
	if a[0].SQL != "CREATE TABLE t (id int);" {
		t.Fatalf("SQL = %q", a[0].SQL)
	}
}

// open returns a pool on a fresh database, closed at the end of the test.
func open(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func migrate(t *testing.T, pool *pgxpool.Pool, service string, ms []postgres.Migration) int {
	t.Helper()
	n, err := postgres.Migrate(context.Background(), pool, service, ms)
	if err != nil {
		t.Fatalf("Migrate %s: %v", service, err)
	}
	return n
}

// ledger returns the versions recorded for service, in order.
func ledger(t *testing.T, pool *pgxpool.Pool, service string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT version, name FROM switchyard_migrations WHERE service = $1 ORDER BY version`, service)
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s", v, name))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func tableExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", nil); err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
	if _, err := postgres.Open(ctx, "::not a url::", nil); err == nil || !strings.Contains(err.Error(), "parse DATABASE_URL") {
		t.Fatalf("Open with a bad URL: %v, want a parse error", err)
	}
}

func TestMigrateAppliesInOrderOnce(t *testing.T) {
	t.Parallel()
	pool := open(t, testkit.Postgres(t))
	// 0002 depends on 0001 and 0003 on 0002: out-of-order application fails.
	ms := load(t, map[string]string{
		"0003_seed.sql":     "INSERT INTO accounts (id, plan) VALUES (1, 'pro');",
		"0001_accounts.sql": "CREATE TABLE accounts (id int PRIMARY KEY);",
		"0002_plan.sql":     "ALTER TABLE accounts ADD COLUMN plan text NOT NULL;\nCREATE INDEX accounts_plan ON accounts (plan);",
	})
	if n := migrate(t, pool, "billing", ms); n != 3 {
		t.Fatalf("first Migrate applied %d, want 3", n)
	}
	if got, want := ledger(t, pool, "billing"), []string{"1:accounts", "2:plan", "3:seed"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ledger = %v, want %v", got, want)
	}
	var checksum string
	if err := pool.QueryRow(context.Background(),
		`SELECT checksum FROM switchyard_migrations WHERE service = 'billing' AND version = 2`).Scan(&checksum); err != nil {
		t.Fatal(err)
	}
	if checksum != ms[1].Checksum {
		t.Fatalf("ledger checksum %s, want %s", checksum, ms[1].Checksum)
	}
	if n := migrate(t, pool, "billing", ms); n != 0 {
		t.Fatalf("second Migrate applied %d, want 0", n)
	}

	// A later release adds a migration: only that one runs.
	more := append(ms, load(t, map[string]string{"0004_more.sql": "INSERT INTO accounts (id, plan) VALUES (2, 'free');"})...)
	if n := migrate(t, pool, "billing", more); n != 1 {
		t.Fatalf("Migrate with one new file applied %d, want 1", n)
	}
	var count int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM accounts`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 2 {
		t.Fatalf("accounts has %d rows, want 2 (each insert once)", count)
	}
}

func TestMigrateChangedChecksum(t *testing.T) {
	t.Parallel()
	pool := open(t, testkit.Postgres(t))
	migrate(t, pool, "crm", load(t, map[string]string{"0001_contacts.sql": "CREATE TABLE contacts (id int);"}))

	edited := load(t, map[string]string{
		"0001_contacts.sql": "CREATE TABLE contacts (id bigint);",
		"0002_later.sql":    "CREATE TABLE later (id int);",
	})
	n, err := postgres.Migrate(context.Background(), pool, "crm", edited)
	if err == nil {
		t.Fatal("Migrate accepted an edited migration that already ran")
	}
	for _, s := range []string{"crm", "0001_contacts", "changed after it was applied"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if n != 0 {
		t.Errorf("Migrate applied %d, want 0", n)
	}
	if tableExists(t, pool, "later") {
		t.Error("a migration after the edited one ran")
	}
}

func TestMigrateFailureRollsBack(t *testing.T) {
	t.Parallel()
	pool := open(t, testkit.Postgres(t))
	ms := load(t, map[string]string{
		"0001_good.sql": "CREATE TABLE good (id int);",
		// The table is created, then the statement after it fails: the whole
		// file must roll back.
		"0002_bad.sql":   "CREATE TABLE half_done (id int);\nINSERT INTO no_such_table VALUES (1);",
		"0003_after.sql": "CREATE TABLE after_bad (id int);",
	})
	n, err := postgres.Migrate(context.Background(), pool, "support", ms)
	if err == nil {
		t.Fatal("Migrate succeeded with a failing migration")
	}
	if !strings.Contains(err.Error(), "0002_bad") {
		t.Errorf("error %q does not name the failing file", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Errorf("error %v does not wrap the undefined_table PgError", err)
	}
	if n != 1 {
		t.Errorf("Migrate applied %d, want 1 (the good one)", n)
	}
	if !tableExists(t, pool, "good") {
		t.Error("the migration before the failing one was not kept")
	}
	if tableExists(t, pool, "half_done") {
		t.Error("the failing migration was not rolled back: half_done exists")
	}
	if tableExists(t, pool, "after_bad") {
		t.Error("a migration after the failing one ran")
	}
	if got := ledger(t, pool, "support"); strings.Join(got, ",") != "1:good" {
		t.Errorf("ledger = %v, want only 1:good", got)
	}

	// Fixing the file lets the next start continue where it stopped.
	fixed := load(t, map[string]string{
		"0001_good.sql":  "CREATE TABLE good (id int);",
		"0002_bad.sql":   "CREATE TABLE half_done (id int);",
		"0003_after.sql": "CREATE TABLE after_bad (id int);",
	})
	if n := migrate(t, pool, "support", fixed); n != 2 {
		t.Fatalf("Migrate after the fix applied %d, want 2", n)
	}
}

func TestMigrateSeparateLedgers(t *testing.T) {
	t.Parallel()
	pool := open(t, testkit.Postgres(t))
	gw := load(t, map[string]string{"0001_init.sql": "CREATE TABLE gw_events (id int);"})
	sy := load(t, map[string]string{
		"0001_init.sql":  "CREATE TABLE sy_projection (id int);",
		"0002_index.sql": "CREATE INDEX sy_projection_id ON sy_projection (id);",
	})
	if n := migrate(t, pool, "gateway", gw); n != 1 {
		t.Fatalf("gateway applied %d, want 1", n)
	}
	// Same version numbers, different service: not mistaken for applied,
	// and not a checksum clash.
	if n := migrate(t, pool, "switchyard", sy); n != 2 {
		t.Fatalf("switchyard applied %d, want 2", n)
	}
	if n := migrate(t, pool, "gateway", gw); n != 0 {
		t.Fatalf("gateway re-run applied %d, want 0", n)
	}
	if got := ledger(t, pool, "gateway"); strings.Join(got, ",") != "1:init" {
		t.Errorf("gateway ledger = %v", got)
	}
	if got := ledger(t, pool, "switchyard"); strings.Join(got, ",") != "1:init,2:index" {
		t.Errorf("switchyard ledger = %v", got)
	}
}

// TestMigrateConcurrent starts five replicas of one service at once, each with
// its own pool as separate processes would have: every migration must run
// exactly once.
func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	url := testkit.Postgres(t)
	setup := open(t, url)
	if _, err := setup.Exec(context.Background(), `CREATE TABLE applied (version int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// Create the ledger first, so this test is about the per-service lock
	// around applying migrations, not about creating the ledger (which
	// TestMigrateServicesConcurrentFreshDatabase covers).
	if n := migrate(t, setup, "switchyard", nil); n != 0 {
		t.Fatalf("empty Migrate applied %d", n)
	}
	ms := load(t, map[string]string{
		"0001_a.sql": "INSERT INTO applied VALUES (1); CREATE TABLE a (id int);",
		"0002_b.sql": "INSERT INTO applied VALUES (2); SELECT pg_sleep(0.05);",
		"0003_c.sql": "INSERT INTO applied VALUES (3); CREATE TABLE c (id int);",
	})

	const replicas = 5
	pools := make([]*pgxpool.Pool, replicas)
	for i := range pools {
		pools[i] = open(t, url)
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		ns    = make([]int, replicas)
		errs  = make([]error, replicas)
	)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ns[i], errs[i] = postgres.Migrate(context.Background(), pools[i], "switchyard", ms)
		}()
	}
	close(start)
	wg.Wait()

	total := 0
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
		}
		total += ns[i]
	}
	if total != len(ms) {
		t.Errorf("replicas applied %v migrations, %d in all, want %d", ns, total, len(ms))
	}
	rows, err := setup.Query(context.Background(), `SELECT version, count(*) FROM applied GROUP BY version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d×%d", v, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "1×1,2×1,3×1"; strings.Join(got, ",") != want {
		t.Fatalf("migrations ran %v times, want %s", got, want)
	}
}

// TestMigrateServicesConcurrentFreshDatabase starts several services at once
// against a database that has no ledger yet, as `switchyard dev` or a compose
// stack does on first boot: they hold different locks, so creating the shared
// ledger table must still be safe.
func TestMigrateServicesConcurrentFreshDatabase(t *testing.T) {
	t.Parallel()
	url := testkit.Postgres(t)
	services := []string{"gateway", "switchyard", "projector", "crm", "support"}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, len(services))
	)
	for i, svc := range services {
		pool := open(t, url)
		ms := load(t, map[string]string{"0001_init.sql": "CREATE TABLE " + svc + "_init (id int);"})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = postgres.Migrate(context.Background(), pool, svc, ms)
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent first Migrate of different services: %v", err)
	}
	check := open(t, url)
	for _, svc := range services {
		if got := ledger(t, check, svc); strings.Join(got, ",") != "1:init" {
			t.Errorf("%s ledger = %v, want 1:init", svc, got)
		}
	}
}

func TestMigrateCancelled(t *testing.T) {
	t.Parallel()
	pool := open(t, testkit.Postgres(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := postgres.Migrate(ctx, pool, "x", load(t, map[string]string{"0001_a.sql": "CREATE TABLE a (id int);"}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Migrate with a cancelled context: %v, want context.Canceled", err)
	}
}

// An operator reading pg_stat_activity (who holds this lock? whose
// transaction is idle?) sees which service a connection is; a URL that
// names its connections keeps its name.
func TestOpenAsNamesConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testkit.Postgres(t)
	appOf := func(url, app string) string {
		pool, err := postgres.OpenAs(ctx, url, app, nil)
		if err != nil {
			t.Fatalf("OpenAs: %v", err)
		}
		defer pool.Close()
		var got string
		if err := pool.QueryRow(ctx, `SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := appOf(url, "switchyard-crm"); got != "switchyard-crm" {
		t.Errorf("application_name = %q, want switchyard-crm", got)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	if got := appOf(url+sep+"application_name=ops-console", "switchyard-crm"); got != "ops-console" {
		t.Errorf("with the URL's application_name: %q, want ops-console", got)
	}
}
