package view_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
)

// A rebuild tells duplicates by a hash of their event ids and settles the
// ones whose hash it saw before in PostgreSQL: when every id's hash
// collides, it stores the same rows (the first message of each event id,
// merges in stream order) and counts the same duplicates.
func TestRebuildWithHashCollisions(t *testing.T) {
	msgs := lifegen.Generate(7, 60)
	// Redelivered duplicates (past JetStream's dedup window) are stored
	// twice; these under another trace, so keeping the wrong one shows.
	var dups []lifegen.Msg
	for i, m := range msgs[:40] {
		h := nats.Header{}
		for k, v := range m.Header {
			if k != "Nats-Msg-Id" {
				h[k] = v
			}
		}
		h.Set("traceparent", fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))
		m.Header = h
		dups = append(dups, m)
	}
	e := setupStreams(t, append(msgs, dups...))
	store := view.NewStore(e.pool, view.Schema)
	rebuild := func() (view.RebuildReport, []string) {
		t.Helper()
		resetProjection(t, e.pool)
		rep, err := view.Rebuild(context.Background(), e.pool, e.js, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := store.Rows(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return rep, rows
	}
	want, wantRows := rebuild()
	if want.Events != len(msgs) || want.Duplicates != len(dups) {
		t.Fatalf("report %+v, want %d events and %d duplicates", want, len(msgs), len(dups))
	}
	if !slices.ContainsFunc(wantRows, func(r string) bool { return strings.HasPrefix(r, "aliases ") }) {
		t.Fatal("no merge was generated; the test does not cover merges")
	}
	undo := view.CollideEventIDs()
	got, gotRows := rebuild()
	undo()
	if got.Events != want.Events || got.Duplicates != want.Duplicates || got.Customers != want.Customers {
		t.Fatalf("with colliding hashes: report %+v, want %+v", got, want)
	}
	if d := viewtest.Diff(wantRows, gotRows); d != "" {
		t.Fatalf("with colliding hashes the rebuilt projection differs:\n%s", d)
	}
}
