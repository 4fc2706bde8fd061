package view_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// TestLaterLocksNeverWaitCrosswise: a batch about a merged customer locks
// the merged id, then, in a later round, the survivor it resolves to. A
// batch naming both takes both in its first round, in key order. When
// that order puts the survivor first, each used to wait for the other
// until PostgreSQL's deadlock detector failed one of them a second later
// (and the consumer retried it after its backoff). Now the first batch,
// finding the survivor's lock held, rolls back and starts again with the
// survivor in its first round: both batches apply, neither fails.
func TestLaterLocksNeverWaitCrosswise(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, pool := migratedProjection(t)
	store := view.NewStore(pool, view.Schema)

	// Names whose lock keys put the survivor first.
	var survivor, merged string
	for i := 0; survivor == ""; i++ {
		s, m := fmt.Sprintf("cust_survivor_%d", i), fmt.Sprintf("cust_merged_%d", i)
		var first bool
		if err := pool.QueryRow(ctx, `SELECT hashtextextended($1, 0) < hashtextextended($2, 0)`, s, m).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first {
			survivor, merged = s, m
		}
	}
	upsert := func(customer, event string, mergedIDs ...string) view.Entry {
		t.Helper()
		data, err := proto.Marshal(&billingv1.CustomerUpserted{
			Meta:  &billingv1.EventMeta{EventId: event, CanonicalCustomerId: customer},
			Email: customer + "@example.com", MergedCanonicalIds: mergedIDs,
		})
		if err != nil {
			t.Fatal(err)
		}
		e, err := view.NewEntry(subjects.BillingCustomerUpserted, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if err := store.Apply(ctx, []view.Entry{upsert(merged, "e1"), upsert(survivor, "e2"), upsert(survivor, "e3", merged)}); err != nil {
		t.Fatal(err)
	}

	// Batch A, about the merged customer, stops once it holds its first
	// round (the merged id) until batch B, about both, waits for it.
	held, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	// Released on failure too, before the pool closes: a parked batch holds
	// a connection.
	t.Cleanup(func() { released.Do(func() { close(release) }) })
	view.AfterFirstRound(store, func() { once.Do(func() { close(held); <-release }) })
	errs := make(chan error, 2)
	go func() { errs <- store.Apply(ctx, []view.Entry{upsert(merged, "e4")}) }()
	select {
	case <-held:
	case err := <-errs:
		t.Fatalf("batch A ended before its first round of locks: %v", err)
	}
	other := view.NewStore(pool, view.Schema)
	go func() { errs <- other.Apply(ctx, []view.Entry{upsert(survivor, "e5"), upsert(merged, "e6")}) }()
	testkit.WaitFor(t, 10*time.Second, "batch B to wait for the merged customer's lock", func() bool {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting > 0
	})
	released.Do(func() { close(release) })
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a batch failed: %v", err)
		}
	}
	if got := store.Relocks(); got != 1 {
		t.Errorf("batch A started again %d times, want once", got)
	}
	if got := other.Relocks(); got != 0 {
		t.Errorf("batch B started again %d times, want never", got)
	}
	var stored int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+view.Schema+`.events WHERE event_id IN ('e4', 'e5', 'e6')`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 3 {
		t.Errorf("%d of the two batches' 3 events stored", stored)
	}
	var owner string
	if err := pool.QueryRow(ctx, `SELECT survivor_id FROM `+view.Schema+`.aliases WHERE merged_id = $1`, merged).Scan(&owner); err != nil || owner != survivor {
		t.Errorf("the merged customer's owner is %q (%v), want %q", owner, err, survivor)
	}
}
