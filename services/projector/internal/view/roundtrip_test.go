package view_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
)

// TestApplyRoundTrips pins what a live batch costs PostgreSQL in round
// trips: BEGIN, the swap lock, the events, their sources and the
// customers' locks travel together, COMMIT with the views, so a batch
// with no merge costs four — that, resolving its owners, loading their
// events, and the views — however many events and customers it holds. Its
// statements do not grow with them either: the views are one statement.
func TestApplyRoundTrips(t *testing.T) {
	ctx := context.Background()
	url, plain := migratedProjection(t)
	trips := &testkit.RoundTrips{}
	traced, err := postgres.Open(ctx, url, trips)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(traced.Close)
	store := view.NewStore(traced, view.Schema)

	var oneCustomer int64
	for _, n := range []int{1, 5, 40} {
		entries := viewtest.Entries(t, lifegen.GenerateRange(11, 1000*n, n))
		var plain []view.Entry
		for _, e := range entries {
			var up billingv1.CustomerUpserted
			if e.Subject == subjects.BillingCustomerUpserted {
				if err := proto.Unmarshal(e.Payload, &up); err != nil {
					t.Fatal(err)
				}
			}
			if len(up.GetMergedCanonicalIds()) == 0 { // a merge adds its own statements
				plain = append(plain, e)
			}
		}
		before, beforeStmts := trips.Count(), trips.Statements()
		if err := store.Apply(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if got := trips.Count() - before; got != 4 {
			t.Errorf("a batch of %d events about %d customers: %d round trips, want 4", len(plain), n, got)
		}
		stmts := trips.Statements() - beforeStmts
		if n == 1 {
			oneCustomer = stmts
		} else if stmts != oneCustomer {
			t.Errorf("a batch of %d events about %d customers: %d statements, against %d for one customer", len(plain), n, stmts, oneCustomer)
		}
	}
	var rows int
	if err := plain.QueryRow(ctx, `SELECT count(*) FROM `+view.Schema+`.customers`).Scan(&rows); err != nil || rows == 0 {
		t.Fatalf("the batches left %d customers (%v): nothing was committed", rows, err)
	}
}
