package view_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
)

// TestBatchLoadPlansForTheStoreAsItGrows: a projector whose connection
// started on an empty store (a first `switchyard dev`, a new deployment)
// must not keep reading every event per batch once the store has grown.
// A named prepared statement keeps its generic plan for the connection's
// life, and one planned on a few rows may be a sequential scan; nothing
// replans it until an ANALYZE, which autovacuum may run late or, with
// autovacuum off, never. So on one connection: batches applied while the
// store is tiny — never analysed, or analysed while tiny (autovacuum's
// first ANALYZE, a Rebuild of a small store) — then thousands of
// customers' history written with no ANALYZE, then one more batch, which
// must not scan the events table or the merges' aliases
// (pg_stat_user_tables, flushed by the connection itself).
func TestBatchLoadPlansForTheStoreAsItGrows(t *testing.T) {
	t.Run("never analysed", func(t *testing.T) { loadPlansAsTheStoreGrows(t, false) })
	t.Run("analysed while tiny", func(t *testing.T) { loadPlansAsTheStoreGrows(t, true) })
}

func loadPlansAsTheStoreGrows(t *testing.T, analyseTiny bool) {
	ctx := context.Background()
	url, plain := migratedProjection(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every statement of the live store on one backend, with its cached plans
	one, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(one.Close)
	live := view.NewStore(one, view.Schema)

	early := viewtest.Entries(t, lifegen.GenerateRange(9, 1, 12))
	for i := 0; len(early) > 0; i++ { // well past the five executions after which PostgreSQL may settle on a generic plan
		n := min(len(early), 2)
		if err := live.Apply(ctx, early[:n]); err != nil {
			t.Fatal(err)
		}
		early = early[n:]
		if i == 1 && analyseTiny {
			if _, err := plain.Exec(ctx, "ANALYZE "+view.Schema+".events, "+view.Schema+".aliases, "+view.Schema+".customers"); err != nil {
				t.Fatal(err)
			}
		}
	}

	history := viewtest.Entries(t, lifegen.GenerateRange(9, 100, 3000))
	grown := view.NewStore(plain, view.Schema)
	for len(history) > 0 {
		n := min(len(history), 1000)
		if err := grown.Apply(ctx, history[:n]); err != nil {
			t.Fatal(err)
		}
		history = history[n:]
	}
	var events int64
	if err := plain.QueryRow(ctx, `SELECT count(*) FROM `+view.Schema+`.events`).Scan(&events); err != nil {
		t.Fatal(err)
	}

	scans := func() map[string][2]int64 {
		t.Helper()
		// The live connection's counters reach the shared statistics when
		// it goes idle after this call.
		if _, err := one.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
			t.Fatal(err)
		}
		out := map[string][2]int64{}
		for _, table := range []string{"events", "aliases"} {
			var seq, rows int64
			if err := plain.QueryRow(ctx, `SELECT coalesce(seq_scan, 0), coalesce(seq_tup_read, 0) FROM pg_stat_user_tables
				WHERE schemaname = $1 AND relname = $2`, view.Schema, table).Scan(&seq, &rows); err != nil {
				t.Fatal(err)
			}
			out[table] = [2]int64{seq, rows}
		}
		return out
	}
	before := scans()
	later := viewtest.Entries(t, lifegen.GenerateRange(9, 13, 4))
	if err := live.Apply(ctx, later); err != nil {
		t.Fatal(err)
	}
	after := scans()
	for table, b := range before {
		if a := after[table]; a[0] != b[0] {
			t.Errorf("applying one batch on a store of %d events scanned %s %d time(s), reading %d rows: "+
				"a plan made while the store was empty is still in use", events, table, a[0]-b[0], a[1]-b[1])
		}
	}
}
