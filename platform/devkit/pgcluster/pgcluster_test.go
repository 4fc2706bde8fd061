package pgcluster_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/devkit/pgcluster"
)

// TestStartStop runs a private cluster end to end. As root (as here and in
// CI) it exercises the hand-over to the postgres system user, so the data
// directory's parent must be one that user can reach.
func TestStartStop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dir, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	c, err := pgcluster.Start(ctx, filepath.Join(dir, "data"), 0, os.Getenv)
	if err != nil {
		t.Fatalf("Start: %v\nThis test needs the PostgreSQL server binaries (Debian: apt-get install postgresql, or set PG_BINDIR).", err)
	}
	t.Cleanup(func() { _ = c.Stop() }) // Stop is safe to repeat
	if c.Dir != filepath.Join(dir, "data") {
		t.Errorf("cluster in %s, want %s/data (the directory is reachable)", c.Dir, dir)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION")); err != nil {
		t.Errorf("no initialised cluster in %s: %v", c.Dir, err)
	}

	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect to the private cluster: %v", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE probe (id int PRIMARY KEY, note text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO probe VALUES (1, 'hello')`); err != nil {
		t.Fatal(err)
	}
	var note string
	if err := conn.QueryRow(ctx, `SELECT note FROM probe WHERE id = 1`).Scan(&note); err != nil || note != "hello" {
		t.Fatalf("read back %q, %v", note, err)
	}
	var addr string
	if err := conn.QueryRow(ctx, `SELECT current_setting('listen_addresses')`).Scan(&addr); err != nil || addr != "127.0.0.1" {
		t.Errorf("listen_addresses = %q, %v; want 127.0.0.1 only", addr, err)
	}
	_ = conn.Close(ctx)

	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	_, err = pgx.Connect(ctx, c.URL("postgres"))
	if err == nil {
		t.Fatal("connected after Stop")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect after Stop: %v, want connection refused", err)
	}
}

func TestFindBinDir(t *testing.T) {
	t.Parallel()
	dir, err := pgcluster.FindBinDir(func(string) string { return "" })
	if err != nil {
		t.Fatalf("FindBinDir: %v", err)
	}
	for _, bin := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			t.Errorf("%s not in %s: %v", bin, dir, err)
		}
	}

	// PG_BINDIR wins when it holds initdb, and is ignored when it does not.
	if got, err := pgcluster.FindBinDir(func(k string) string {
		if k == "PG_BINDIR" {
			return dir
		}
		return ""
	}); err != nil || got != dir {
		t.Errorf("FindBinDir with PG_BINDIR=%s = %q, %v", dir, got, err)
	}
	if got, err := pgcluster.FindBinDir(func(k string) string {
		if k == "PG_BINDIR" {
			return t.TempDir()
		}
		return ""
	}); err != nil || got != dir {
		t.Errorf("FindBinDir with an empty PG_BINDIR = %q, %v; want the fallback %s", got, err, dir)
	}
}
