package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
)

// TestReadCommit: a pipelined COMMIT after a statement that failed is
// answered ROLLBACK, not with an error; ReadCommit reports it, and the
// transaction's writes are gone. A COMMIT that went through reads clean.
func TestReadCommit(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE rc (v int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	c := conn.Conn()
	send := func(stmts ...string) pgx.BatchResults {
		b := &pgx.Batch{}
		for _, s := range stmts {
			b.Queue(s)
		}
		return c.SendBatch(ctx, b)
	}

	// A write, then a statement that fails and aborts the transaction;
	// its COMMIT comes in the next pipeline.
	br := send("BEGIN", "INSERT INTO rc VALUES (1)", "SELECT 1/0")
	for range 2 {
		if _, err := br.Exec(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := br.Exec(); err == nil {
		t.Fatal("1/0 succeeded")
	}
	_ = br.Close()
	br = send("COMMIT")
	if err := postgres.ReadCommit(br); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Fatalf("COMMIT of a failed transaction: %v, want pgx.ErrTxCommitRollback", err)
	}
	_ = br.Close()

	br = send("BEGIN", "INSERT INTO rc VALUES (2)", "COMMIT")
	for range 2 {
		if _, err := br.Exec(); err != nil {
			t.Fatal(err)
		}
	}
	if err := postgres.ReadCommit(br); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	_ = br.Close()
	var rows []int
	r, err := pool.Query(ctx, `SELECT v FROM rc ORDER BY v`)
	if err == nil {
		rows, err = pgx.CollectRows(r, pgx.RowTo[int])
	}
	if err != nil || len(rows) != 1 || rows[0] != 2 {
		t.Fatalf("rows %v (%v), want only the committed 2", rows, err)
	}
}
