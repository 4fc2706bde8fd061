package view_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// TestLiveQueriesUseIndexesOnAStoreWithHistory: what the live path and the
// status API ask of PostgreSQL must not read a table with history in
// whole. On a projection holding a few thousand customers' lifecycles
// (ANALYZEd, as autovacuum keeps a real one), every statement that
// applying new batches (merges among them) and reading customers and
// timelines sends is EXPLAINed: none may plan a sequential scan of the
// events, their sources or the customers. A batch's load once did — a
// scan of every event per batch, so the projector slowed as its store
// grew.
func TestLiveQueriesUseIndexesOnAStoreWithHistory(t *testing.T) {
	ctx := context.Background()
	url, plain := migratedProjection(t)
	history := viewtest.Entries(t, lifegen.Generate(7, 3000))
	store := view.NewStore(plain, view.Schema)
	for len(history) > 0 {
		n := min(len(history), 1000)
		if err := store.Apply(ctx, history[:n]); err != nil {
			t.Fatal(err)
		}
		history = history[n:]
	}
	if _, err := plain.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}

	traced, stmts := testkit.TracedPool(t, url)
	live := view.NewStore(traced, view.Schema)
	fresh := viewtest.Entries(t, lifegen.GenerateRange(8, 3001, 40))
	for len(fresh) > 0 {
		n := min(len(fresh), 16)
		if err := live.Apply(ctx, fresh[:n]); err != nil {
			t.Fatal(err)
		}
		fresh = fresh[n:]
	}
	customers := map[string]bool{}
	for _, e := range viewtest.Entries(t, lifegen.GenerateRange(8, 3001, 40)) {
		customers[e.CustomerID] = true
	}
	for id := range customers {
		if _, err := live.Customer(ctx, id); err != nil && err != view.ErrNotFound {
			t.Fatal(err)
		}
		if _, err := live.Timeline(ctx, id, nil, 20, true); err != nil && err != view.ErrNotFound {
			t.Fatal(err)
		}
	}
	if _, err := live.FindByEmail(ctx, "nobody@example.com"); err != nil {
		t.Fatal(err)
	}
	sent := stmts.Take()
	merges := 0
	for _, st := range sent {
		if strings.Contains(st.SQL, "(merged_id, survivor_id) VALUES") {
			merges++
		}
	}
	if merges == 0 {
		t.Fatal("no merge among the new batches: the merge path went unexplained")
	}
	scans, err := testkit.SeqScans(ctx, plain, sent, "events", "event_sources", "customers")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scans {
		t.Error(s)
	}
	t.Logf("%d statements explained over %d customers (%d merges)", len(sent), len(customers), merges)
}

// migratedProjection is a fresh database with the projection's tables:
// its URL and a pool on it (without a tracer), closed with the test.
func migratedProjection(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	url := testkit.Postgres(t)
	plain, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	if err := migrations.Projection(ctx, plain); err != nil {
		t.Fatal(err)
	}
	return url, plain
}
