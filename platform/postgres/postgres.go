// Package postgres opens pgx pools and applies versioned SQL migrations.
//
// Migrations are plain SQL files embedded in each service (`migrations/0001_name.sql`,
// numbered, applied in order, each in its own transaction). The runner keeps one
// row per (service, version) in switchyard_migrations with the file's checksum,
// so an edited migration that already ran is reported instead of ignored, and
// takes a PostgreSQL advisory lock so replicas starting together apply each
// migration exactly once. We chose a small runner over a migration library:
// the services only ever migrate forward, and the runner has no other
// dependency than pgx.
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool to url and checks it with a ping. tracer may be nil.
func Open(ctx context.Context, url string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	return OpenAs(ctx, url, "", tracer)
}

// OpenAs is Open for the program app: unless url sets application_name,
// the pool's connections carry app as theirs, so pg_stat_activity, the
// server's log lines and per-backend CPU say which service a connection
// (a lock held, an idle transaction) belongs to.
func OpenAs(ctx context.Context, url, app string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if _, set := cfg.ConnConfig.RuntimeParams["application_name"]; !set && app != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = app
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

// Migration is one numbered SQL file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// LoadMigrations reads NNNN_name.sql files from dir in fsys, sorted by version.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: name, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// ledgerLock is the advisory lock key, common to all services, under which
// the shared ledger table is created: an arbitrary constant, "sw-ledgr" in ASCII.
const ledgerLock int64 = 0x73772d6c65646772

// Migrate applies the migrations of service that have not run yet and returns
// how many it applied. A migration that ran with different content is an error.
func Migrate(ctx context.Context, pool *pgxpool.Pool, service string, ms []Migration) (int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: acquire: %w", service, err)
	}
	defer conn.Release()

	h := fnv.New64a()
	_, _ = h.Write([]byte("switchyard-migrate:" + service))
	lock := int64(h.Sum64())
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lock); err != nil {
		return 0, fmt.Errorf("migrate %s: lock: %w", service, err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lock) }()

	// The ledger is shared by all services, whose locks differ, and CREATE
	// TABLE IF NOT EXISTS fails (unique violation in pg_type) when two
	// sessions create the same table at once: serialise its creation under
	// one lock common to every service.
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, ledgerLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS switchyard_migrations (
		service    text        NOT NULL,
		version    integer     NOT NULL,
		name       text        NOT NULL,
		checksum   text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (service, version))`)
		return err
	}); err != nil {
		return 0, fmt.Errorf("migrate %s: ledger table: %w", service, err)
	}
	applied := map[int]string{}
	rows, err := conn.Query(ctx, `SELECT version, checksum FROM switchyard_migrations WHERE service = $1`, service)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: read ledger: %w", service, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return 0, fmt.Errorf("migrate %s: %w", service, err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("migrate %s: %w", service, err)
	}
	rows.Close() // the connection is needed for the migrations below

	n := 0
	for _, m := range ms {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return n, fmt.Errorf("migrate %s: %04d_%s changed after it was applied (checksum %s, now %s)", service, m.Version, m.Name, sum[:12], m.Checksum[:12])
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO switchyard_migrations (service, version, name, checksum) VALUES ($1, $2, $3, $4)`,
				service, m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("migrate %s: %04d_%s: %w", service, m.Version, m.Name, err)
		}
		n++
	}
	return n, nil
}

// MigrateDir loads the NNNN_name.sql files in dir of fsys (usually an
// embed.FS) and applies them for service; see Migrate.
func MigrateDir(ctx context.Context, pool *pgxpool.Pool, service string, fsys fs.FS, dir string) error {
	ms, err := LoadMigrations(fsys, dir)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", service, err)
	}
	_, err = Migrate(ctx, pool, service, ms)
	return err
}

// ReadCommit reads the answer to the COMMIT a pipeline queued next: its
// error, or pgx.ErrTxCommitRollback if the server answered ROLLBACK (the
// transaction had failed before it, and a failed transaction's COMMIT is
// answered that way, not with an error).
func ReadCommit(br pgx.BatchResults) error {
	tag, err := br.Exec()
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// rollbackTimeout bounds RollbackOpen's ROLLBACK.
const rollbackTimeout = 5 * time.Second

// RollbackOpen ends a transaction left open on c — by a pipeline that
// carried its own BEGIN and failed or was cancelled before its COMMIT —
// so the connection goes back to its pool clean. The ROLLBACK is bounded
// and apart from ctx, so a cancelled caller still cleans up and a dead
// server cannot hold it; if it fails, c is closed, which ends the
// transaction all the same (and the pool drops a closed connection).
func RollbackOpen(ctx context.Context, c *pgx.Conn) {
	if c.PgConn().TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if _, err := c.Exec(rctx, "ROLLBACK"); err != nil {
		_ = c.Close(rctx)
	}
}
