package identity_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/services/identity"
)

// TestBatchResolvesAsOneByOne holds a batch to the contract of
// ResolveBatch: every event's Resolution and error, and the database it
// leaves, are those of resolving each event alone, in order. The events
// walk a planned batch through everything it decides — new and known
// customers, profiles replaced and filled, versions newer, tied (settled
// by status, or asked of Stripe), stale and redelivered, a guest charge, an
// unknown customer, a customer with two Stripe ids — and what ends the
// plan: customers merged, Stripe customers sharing an email, a merge
// redelivered, text PostgreSQL refuses. An email link alone is a change. Each run resolves the first k
// events one by one and the rest as one batch, for every k, so every event
// is also the batch's first.
func TestBatchResolvesAsOneByOne(t *testing.T) {
	ctx := context.Background()
	version := func(object string, created int64, event, status string) identity.Version {
		return identity.Version{ObjectID: object, Created: created, EventID: event, Status: status}
	}
	ins := []identity.Input{
		{EventID: "e1", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkEmail, "a@example.com"), Email: "a@example.com", Name: "A",
			Authoritative: true, Version: version("cus_A", 100, "e1", "a@example.com")},
		{EventID: "e2", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkInvoice, "in_1"), Version: version("in_1", 100, "e2", "open")},
		{EventID: "e3", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkInvoice, "in_1", identity.LinkCharge, "ch_1"), Version: version("in_1", 100, "e3", "paid")},
		{EventID: "e4", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkInvoice, "in_1"), Version: version("in_1", 90, "e4", "draft")},
		{EventID: "e5", IDs: ids(identity.LinkEmail, "b@example.com", identity.LinkInvoice, "in_2"), Email: "b@example.com", Name: "B"},
		{EventID: "e6", IDs: ids(identity.LinkStripeCustomer, "cus_B", identity.LinkEmail, "b@example.com"), Email: "b@example.com", Name: "Bee",
			Authoritative: true, Version: version("cus_B", 100, "e6", "b@example.com")},
		{EventID: "e7", IDs: ids(identity.LinkStripeCustomer, "cus_B", identity.LinkInvoice, "in_2"), Version: version("in_2", 100, "e7", "paid")},
		{EventID: "e8", IDs: ids(identity.LinkCharge, "ch_guest", identity.LinkPaymentIntent, "pi_guest"), GuestCharge: true},
		{EventID: "e9", IDs: ids(identity.LinkCharge, "ch_nobody")},
		{EventID: "e10", IDs: ids(identity.LinkStripeCustomer, "cus_C", identity.LinkEmail, "a@example.com", identity.LinkSubscription, "sub_C"),
			Email: "a@example.com", Name: "C", Authoritative: true, Version: version("cus_C", 100, "e10", "a@example.com")},
		{EventID: "e1", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkEmail, "a@example.com"), Email: "a@example.com", Name: "A",
			Authoritative: true, Version: version("cus_A", 100, "e1", "a@example.com")},
		{EventID: "e6", IDs: ids(identity.LinkStripeCustomer, "cus_B", identity.LinkEmail, "b@example.com"), Email: "b@example.com", Name: "Bee",
			Authoritative: true, Version: version("cus_B", 100, "e6", "b@example.com")},
		{EventID: "e11", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkSubscription, "sub_1"), Version: identity.Version{ObjectID: "sub_1", Created: 200, EventID: "e11", Status: "active", AskOnTie: true}},
		{EventID: "e12", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkSubscription, "sub_1"), Version: identity.Version{ObjectID: "sub_1", Created: 200, EventID: "e12", Status: "past_due", AskOnTie: true}},
		{EventID: "e13", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkSubscription, "sub_1"), Version: identity.Version{ObjectID: "sub_1", Created: 200, EventID: "e13", Status: "past_due", StripeState: "past_due"}},
		{EventID: "e14", IDs: ids(identity.LinkStripeCustomer, "cus_A"), Name: "A2", Authoritative: true, Version: version("cus_A", 300, "e14", "a@example.com")},
		{EventID: "e15", IDs: ids(identity.LinkStripeCustomer, "cus_A"), Name: "Old", Email: "old@example.com", Authoritative: true, Version: version("cus_A", 50, "e15", "old@example.com")},
		{EventID: "e16", IDs: ids(identity.LinkStripeCustomer, "cus_E", identity.LinkStripeCustomer, "cus_D", identity.LinkInvoice, "in_DE")},
		{EventID: "e17", IDs: ids(identity.LinkStripeCustomer, "cus_A", identity.LinkInvoice, "in_nul"), Name: "A\x00", Version: version("in_nul", 10, "e17", "open")},
		{EventID: "e18", IDs: ids(identity.LinkEmail, "b@example.com", identity.LinkInvoice, "in_3"), Email: "b@example.com", Name: "Bea"},
		{EventID: "e19", IDs: ids(identity.LinkInvoice, "in_DE"), Email: "de@example.com", Name: "DE"},
		{EventID: "e20", IDs: ids(identity.LinkStripeCustomer, "cus_D", identity.LinkEmail, "d2@example.com")},
	}

	oneByOne, pool := newStore(t)
	want := make([]outcome, len(ins))
	for i, in := range ins {
		res, err := oneByOne.ResolveInput(ctx, in)
		want[i] = outcomeOf(res, err)
	}
	wantTables := identityTables(t, pool)
	for _, o := range want {
		if o.err != "" && o.err != "unknown customer" && o.err != "version tie" && o.err != "22021" {
			t.Fatalf("one by one: unexpected error %s", o.err)
		}
	}

	var planned int64
	for k := range ins {
		store, pool := newStore(t)
		got := make([]outcome, len(ins))
		for i, in := range ins[:k] {
			res, err := store.ResolveInput(ctx, in)
			got[i] = outcomeOf(res, err)
		}
		res, errs, err := store.ResolveBatch(ctx, ins[k:])
		if err != nil {
			t.Fatalf("batch from %d: %v", k, err)
		}
		for i := range res {
			got[k+i] = outcomeOf(res[i], errs[i])
		}
		for i := k; i < len(ins); i++ {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("batch from %d: event %d (%s) resolved as\n\t%+v\nwant\n\t%+v", k, i, ins[i].EventID, got[i], want[i])
			}
		}
		if tables := identityTables(t, pool); tables != wantTables {
			t.Errorf("batch from %d left\n%s\nwant\n%s", k, tables, wantTables)
		}
		if k == 0 && store.Planned() == 0 {
			t.Error("the whole history as one batch: the plan resolved nothing")
		}
		planned += store.Planned()
	}
	if planned < int64(len(ins)) {
		t.Errorf("the plan resolved %d events in all %d batches: too few to have been compared", planned, len(ins))
	}
}

// outcome is a resolution and its error as compared: empty lists as nil,
// an error by its kind.
type outcome struct {
	res identity.Resolution
	err string
}

func outcomeOf(res identity.Resolution, err error) outcome {
	if len(res.Merged) == 0 {
		res.Merged = nil
	}
	if len(res.StripeCustomerIDs) == 0 {
		res.StripeCustomerIDs = nil
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return outcome{res: res}
	case errors.Is(err, identity.ErrUnknownCustomer):
		return outcome{err: "unknown customer"}
	case errors.Is(err, identity.ErrVersionTie):
		return outcome{err: "version tie"}
	case errors.As(err, &pgErr):
		return outcome{err: pgErr.Code}
	}
	return outcome{err: err.Error()}
}

// identityTables is every row of identity's tables, but for timestamps.
func identityTables(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT canonical_id, email, name, coalesce(merged_into, '') FROM customers ORDER BY 1`,
		`SELECT kind, value, canonical_id, source_event_id FROM customer_links ORDER BY 1, 2`,
		`SELECT object_id, created::text, event_id, status FROM object_versions ORDER BY 1`,
		`SELECT loser, survivor, event_id FROM customer_merges ORDER BY 1`,
		`SELECT customer_a, customer_b, event_id FROM suspected_duplicates ORDER BY 1, 2`,
	} {
		rows, err := pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
			row := make([]string, len(r.FieldDescriptions()))
			dest := make([]any, len(row))
			for i := range row {
				dest[i] = &row[i]
			}
			return row, r.Scan(dest...)
		})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s\n", q[:strings.Index(q, " ORDER")])
		for _, row := range all {
			fmt.Fprintf(&b, "\t%v\n", row)
		}
	}
	return b.String()
}
