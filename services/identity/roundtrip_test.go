package identity_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/identity"
)

// TestResolutionRoundTrips pins how many round trips a resolution costs:
// BEGIN travels with the first (the lookup) and COMMIT with the last, which
// also carries the new links, the object's version and the profile ahead
// of the read back; the lookup also locks the customers it finds, so an
// event of a known customer costs two round trips whatever it links or
// records, and only creating a customer or merging adds round trips of
// their own. It pins the statements too, those
// batched included: each costs PostgreSQL and identity a bind and execute
// of its own, so fewer round trips alone do not make a resolution cheap.
func TestResolutionRoundTrips(t *testing.T) {
	ctx := context.Background()
	store, trips := tracedStore(t)
	steps := []struct {
		name          string
		eventID       string
		ids           []identity.Identifier
		email         string
		version       identity.Version
		want          int64 // round trips
		wantStmts     int64 // statements, alone or in a batch
		wantMerged    int
		wantCreated   bool
		wantCanonical string // "": not checked
	}{
		{
			// lookup, create the customer, link + record the version + read back
			name: "a new customer", eventID: "evt_rt1", ids: ids(identity.LinkStripeCustomer, "cus_RT", identity.LinkEmail, "rt@example.com"),
			email: "rt@example.com", version: identity.Version{ObjectID: "cus_RT", Created: 100, EventID: "evt_rt1", Status: "rt@example.com"},
			want: 3, wantStmts: 11, wantCreated: true, wantCanonical: identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: "cus_RT"}),
		},
		{
			// lookup + lock the customer, read back
			name: "its redelivery", eventID: "evt_rt1", ids: ids(identity.LinkStripeCustomer, "cus_RT", identity.LinkEmail, "rt@example.com"),
			email: "rt@example.com", version: identity.Version{ObjectID: "cus_RT", Created: 100, EventID: "evt_rt1", Status: "rt@example.com"},
			want: 2, wantStmts: 8,
		},
		{
			// lookup + lock the customer, record the version + read back
			name: "a newer version of the customer", eventID: "evt_rt2", ids: ids(identity.LinkStripeCustomer, "cus_RT"),
			email: "rt@example.com", version: identity.Version{ObjectID: "cus_RT", Created: 200, EventID: "evt_rt2", Status: "rt@example.com"},
			want: 2, wantStmts: 9,
		},
		{
			// lookup, create the customer, link + read back
			name: "a customer an email founded", eventID: "evt_rt3", ids: ids(identity.LinkEmail, "old@example.com", identity.LinkInvoice, "in_RT"),
			want: 3, wantStmts: 8, wantCreated: true,
		},
		{
			// lookup + lock the email's customer, create the Stripe
			// customer's, ask which is Stripe-linked, merge (4
			// statements), link + read back
			name: "its Stripe customer appears", eventID: "evt_rt4", ids: ids(identity.LinkStripeCustomer, "cus_RT2", identity.LinkEmail, "old@example.com"),
			want: 8, wantStmts: 13, wantCreated: true, wantMerged: 1,
		},
		{
			// lookup + lock the customer, link 4 (one statement) + read back: an invoice
			// names 5 identifiers, locked and looked up by one
			// statement each
			name: "an invoice of the customer", eventID: "evt_rt5",
			ids: ids(identity.LinkStripeCustomer, "cus_RT", identity.LinkSubscription, "sub_RT", identity.LinkInvoice, "in_RT5",
				identity.LinkCharge, "ch_RT", identity.LinkPaymentIntent, "pi_RT"),
			want: 2, wantStmts: 7,
		},
	}
	for _, s := range steps {
		before, beforeStmts := trips.Count(), trips.Statements()
		res, err := store.Resolve(ctx, s.eventID, s.ids, s.email, "", s.version)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := trips.Count() - before; got != s.want {
			t.Errorf("%s: %d round trips, want %d", s.name, got, s.want)
		}
		if got := trips.Statements() - beforeStmts; got != s.wantStmts {
			t.Errorf("%s: %d statements, want %d", s.name, got, s.wantStmts)
		}
		if res.Created != s.wantCreated || len(res.Merged) != s.wantMerged {
			t.Errorf("%s: created %v, merged %v; want created %v, %d merged", s.name, res.Created, res.Merged, s.wantCreated, s.wantMerged)
		}
		if s.wantCanonical != "" && res.CanonicalID != s.wantCanonical {
			t.Errorf("%s: customer %s, want %s", s.name, res.CanonicalID, s.wantCanonical)
		}
	}
}

// TestBatchRoundTrips pins a batch's cost: its resolutions are chained,
// so a batch of n known customers' events is n+1 round trips — the first
// lookup rides with BEGIN and the batch's locks, each finish carries the
// next one's lookup, and the last finish COMMIT — instead of 2n+2. A new
// customer adds its create.
func TestBatchRoundTrips(t *testing.T) {
	ctx := context.Background()
	store, trips := tracedStore(t)
	const n = 8
	ins := make([]identity.Input, n)
	for i := range ins {
		cus := fmt.Sprintf("cus_BRT%d", i)
		ins[i] = identity.Input{EventID: fmt.Sprintf("evt_brt%d", i), IDs: ids(identity.LinkStripeCustomer, cus),
			Version: identity.Version{ObjectID: cus, Created: 100, EventID: fmt.Sprintf("evt_brt%d", i), Status: "active"}}
	}
	for _, step := range []struct {
		name    string
		created bool
		want    int64
	}{{"new customers", true, 2*n + 1}, {"their next versions", false, n + 1}} {
		before := trips.Count()
		res, errs, err := store.ResolveBatch(ctx, ins)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		for i, r := range res {
			if errs[i] != nil || r.Created != step.created || r.Stale {
				t.Fatalf("%s: %s resolved as %+v, %v", step.name, ins[i].EventID, r, errs[i])
			}
		}
		if got := trips.Count() - before; got != step.want {
			t.Errorf("%s: %d round trips for %d events, want %d", step.name, got, n, step.want)
		}
		for i := range ins {
			ins[i].Version.Created++
		}
	}
	// What the batch committed is there for a resolution outside it.
	res, err := store.ResolveInput(ctx, identity.Input{EventID: "evt_brt_after", IDs: ids(identity.LinkStripeCustomer, "cus_BRT7")})
	if err != nil || res.Created {
		t.Fatalf("after the batches: %+v, %v; want the customer the batch created", res, err)
	}
}

// TestLinkExternalRoundTrips pins a CRM link's cost: one read once the
// contact is linked; a new link takes the read, then BEGIN, the customer's
// lock, the link, its owner and COMMIT together — two round trips, not five.
func TestLinkExternalRoundTrips(t *testing.T) {
	ctx := context.Background()
	store, trips := tracedStore(t)
	res, err := store.Resolve(ctx, "evt_le1", ids(identity.LinkStripeCustomer, "cus_LE"), "", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	contact := identity.Identifier{Kind: identity.LinkCRMContact, Value: "hs_LE"}
	for _, step := range []struct {
		name string
		want int64
	}{{"a new link", 2}, {"the same link again", 1}} {
		before := trips.Count()
		ok, owner, err := store.LinkExternal(ctx, res.CanonicalID, contact, "crm.contact.synced:le")
		if err != nil || !ok || owner != res.CanonicalID {
			t.Fatalf("%s: LinkExternal = %v, %q, %v; want linked to %s", step.name, ok, owner, err, res.CanonicalID)
		}
		if n := trips.Count() - before; n != step.want {
			t.Errorf("%s: %d round trips, want %d", step.name, n, step.want)
		}
	}
}

// tracedStore is a store on a fresh, migrated database whose round trips
// and statements are counted.
func tracedStore(t *testing.T) (*identity.Store, *testkit.RoundTrips) {
	t.Helper()
	trips := &testkit.RoundTrips{}
	pool, err := postgres.Open(context.Background(), testkit.Postgres(t), trips)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := identity.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return identity.NewStore(pool), trips
}
