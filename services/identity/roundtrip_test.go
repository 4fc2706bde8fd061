package identity_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

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

// TestBatchRoundTrips pins a batch's cost. A batch of plain histories is
// planned: two round trips and a statement per table, whatever its size —
// BEGIN, the locks and every lookup in the first; every write and COMMIT
// in the second — where chained resolutions cost a round trip per event.
// From an event where customers meet (a merge), the rest are chained
// after the plan's writes, in the same transaction.
func TestBatchRoundTrips(t *testing.T) {
	ctx := context.Background()
	store, trips := tracedStore(t)
	const n = 8
	ins := make([]identity.Input, n)
	for i := range ins {
		cus := fmt.Sprintf("cus_BRT%d", i)
		ins[i] = identity.Input{EventID: fmt.Sprintf("evt_brt%d", i), IDs: ids(identity.LinkStripeCustomer, cus, identity.LinkInvoice, fmt.Sprintf("in_BRT%d", i)),
			Version: identity.Version{ObjectID: cus, Created: 100, EventID: fmt.Sprintf("evt_brt%d", i), Status: "active"}}
	}
	for _, step := range []struct {
		name                 string
		created              bool
		wantTrips, wantStmts int64
	}{
		// BEGIN, locks, links, versions, lock and read customers, merges;
		// customers, links, versions, COMMIT.
		{"new customers", true, 2, 11},
		{"their next versions", false, 2, 10},
	} {
		before, beforeStmts := trips.Count(), trips.Statements()
		res, errs, err := store.ResolveBatch(ctx, ins)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		for i, r := range res {
			if errs[i] != nil || r.Created != step.created || r.Stale {
				t.Fatalf("%s: %s resolved as %+v, %v", step.name, ins[i].EventID, r, errs[i])
			}
		}
		if got := trips.Count() - before; got != step.wantTrips {
			t.Errorf("%s: %d round trips for %d events, want %d", step.name, got, n, step.wantTrips)
		}
		if got := trips.Statements() - beforeStmts; got != step.wantStmts {
			t.Errorf("%s: %d statements for %d events, want %d", step.name, got, n, step.wantStmts)
		}
		for i := range ins {
			ins[i].Version.Created++
			ins[i].EventID = fmt.Sprintf("evt_brt%d_%d", i, ins[i].Version.Created)
			ins[i].Version.EventID = ins[i].EventID
			ins[i].IDs = ids(identity.LinkStripeCustomer, ins[i].Version.ObjectID, identity.LinkInvoice, fmt.Sprintf("in_BRT%d_%d", i, ins[i].Version.Created))
		}
	}
	// What the batch committed is there for a resolution outside it.
	res, err := store.ResolveInput(ctx, identity.Input{EventID: "evt_brt_after", IDs: ids(identity.LinkStripeCustomer, "cus_BRT7", identity.LinkInvoice, "in_BRT7_101")})
	if err != nil || res.Created || res.CanonicalID != identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: "cus_BRT7"}) {
		t.Fatalf("after the batches: %+v, %v; want the customer the batch created, its invoice linked", res, err)
	}

	// A customer an email founded, then its Stripe customer: planned up to
	// the merge (2 round trips, the second carrying the merge's lookup),
	// then the merge chained as a single resolution's (create, ask which
	// is Stripe-linked, merge: 6), its finish with the next lookup, and
	// the last's finish with COMMIT.
	merging := []identity.Input{
		{EventID: "evt_brtm1", IDs: ids(identity.LinkStripeCustomer, "cus_BRT0")},
		{EventID: "evt_brtm2", IDs: ids(identity.LinkEmail, "brt@example.com", identity.LinkInvoice, "in_BRTM")},
		{EventID: "evt_brtm3", IDs: ids(identity.LinkStripeCustomer, "cus_BRTM", identity.LinkEmail, "brt@example.com")},
		{EventID: "evt_brtm4", IDs: ids(identity.LinkStripeCustomer, "cus_BRT1")},
	}
	before := trips.Count()
	mres, errs, err := store.ResolveBatch(ctx, merging)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", merging[i].EventID, err)
		}
	}
	if len(mres[2].Merged) != 1 || mres[2].Merged[0] != mres[1].CanonicalID {
		t.Errorf("the Stripe customer's event merged %v, want [%s]", mres[2].Merged, mres[1].CanonicalID)
	}
	if got := trips.Count() - before; got != 10 {
		t.Errorf("a batch with a merge: %d round trips, want 10", got)
	}
	res, err = store.ResolveInput(ctx, identity.Input{EventID: "evt_brtm_after", IDs: ids(identity.LinkInvoice, "in_BRTM")})
	if err != nil || res.CanonicalID != mres[2].CanonicalID {
		t.Errorf("the email customer's invoice resolves to %q (%v), want the survivor %s", res.CanonicalID, err, mres[2].CanonicalID)
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

// TestBatchPlanRefusedWriteFailsAlone: an event PostgreSQL refuses for its
// data fails alone, having changed nothing, and the rest of its batch is
// committed. A NUL in a name ends the plan before it is read; an
// identifier too long for the links' index is refused by the plan's write,
// which cannot say whose it was: the batch is resolved again one by one.
func TestBatchPlanRefusedWriteFailsAlone(t *testing.T) {
	ctx := context.Background()
	long := make([]byte, 4000) // random hex: PostgreSQL cannot compress it under the index's 2,704 bytes
	if _, err := rand.Read(long); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*identity.Input)
		code string
	}{
		{"a NUL in a name", func(in *identity.Input) { in.Name = "Ref\x00" }, "22021"},
		{"an identifier too long to index", func(in *identity.Input) {
			in.IDs = append(in.IDs, identity.Identifier{Kind: identity.LinkCharge, Value: "ch_" + hex.EncodeToString(long)})
		}, "54000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store, _ := newStore(t)
			ins := make([]identity.Input, 3)
			for i := range ins {
				cus := fmt.Sprintf("cus_REF%d", i)
				ins[i] = identity.Input{EventID: fmt.Sprintf("evt_ref%d", i), IDs: ids(identity.LinkStripeCustomer, cus, identity.LinkInvoice, fmt.Sprintf("in_REF%d", i)),
					Name: "Ref", Authoritative: true, Version: identity.Version{ObjectID: cus, Created: 100, EventID: fmt.Sprintf("evt_ref%d", i)}}
			}
			c.edit(&ins[1])
			res, errs, err := store.ResolveBatch(ctx, ins)
			if err != nil {
				t.Fatal(err)
			}
			var pgErr *pgconn.PgError
			if !errors.As(errs[1], &pgErr) || pgErr.Code != c.code {
				t.Fatalf("the refused event failed with %v, want PostgreSQL's %s", errs[1], c.code)
			}
			for _, i := range []int{0, 2} {
				if errs[i] != nil || !res[i].Created || res[i].Name != "Ref" {
					t.Fatalf("%s: %+v, %v; want created, named", ins[i].EventID, res[i], errs[i])
				}
				got, err := store.ResolveInput(ctx, identity.Input{EventID: "evt_ref_after", IDs: ids(identity.LinkInvoice, fmt.Sprintf("in_REF%d", i))})
				if err != nil || got.CanonicalID != res[i].CanonicalID || got.Name != "Ref" {
					t.Errorf("%s's invoice after the batch: %+v, %v", ins[i].EventID, got, err)
				}
			}
			if got, err := store.ResolveInput(ctx, identity.Input{EventID: "evt_ref_after", IDs: ids(identity.LinkInvoice, "in_REF1")}); !errors.Is(err, identity.ErrUnknownCustomer) {
				t.Errorf("the refused event's invoice resolves to %+v, %v; want nothing linked", got, err)
			}
		})
	}
}
