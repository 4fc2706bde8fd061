package identity_test

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/services/identity"
)

// TestResolutionUsesIndexesOnAStoreWithHistory: nothing a resolution or a
// CRM link asks of PostgreSQL may read a whole table of identity's. On a
// store of 5,000 customers with their links, versions and merges (ANALYZEd, as
// autovacuum keeps a real one), every statement of a varied run — a new
// customer, its redelivery, a newer version, an invoice, an email-founded
// customer whose Stripe customer then appears (a merge), a CRM contact
// linked, and all but the last again as one batch (planned, then chained
// from the merge on) — is EXPLAINed, for its arguments and as the generic plan a
// prepared statement settles on: none may scan customers, their links,
// versions or merges. A merge once scanned every customer (no index on
// merged_into), and a form of the customers' lock did in its generic plan
// (77 ms at 66k customers).
func TestResolutionUsesIndexesOnAStoreWithHistory(t *testing.T) {
	ctx := context.Background()
	url := testkit.Postgres(t)
	_, plain := newStoreAt(t, url)
	for _, q := range []string{
		`INSERT INTO customers (canonical_id, email) SELECT 'cust_h' || g, 'h' || g || '@example.com' FROM generate_series(1, 5000) g`,
		`INSERT INTO customer_links (kind, value, canonical_id, source_event_id)
			SELECT k.kind, k.prefix || g, 'cust_h' || g, 'evt_h' || g FROM generate_series(1, 5000) g,
			(VALUES ('stripe_customer', 'cus_h'), ('email', 'mail_h'), ('invoice', 'in_h'), ('subscription', 'sub_h')) k(kind, prefix)`,
		`INSERT INTO object_versions (object_id, created, event_id, status) SELECT 'sub_h' || g, 100, 'evt_h' || g, 'active' FROM generate_series(1, 5000) g`,
		// Every tenth customer was merged into the next.
		`UPDATE customers SET merged_into = 'cust_h' || (substr(canonical_id, 7)::int + 1) WHERE substr(canonical_id, 7)::int % 10 = 0 AND substr(canonical_id, 7)::int < 5000`,
		`INSERT INTO customer_merges (loser, survivor, event_id) SELECT canonical_id, merged_into, 'evt_m' || canonical_id FROM customers WHERE merged_into IS NOT NULL`,
		`ANALYZE`,
	} {
		if _, err := plain.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	traced, stmts := testkit.TracedPool(t, url)
	store := identity.NewStore(traced)
	steps := []struct {
		eventID string
		ids     []identity.Identifier
		email   string
		version identity.Version
	}{
		{"evt_p1", ids(identity.LinkStripeCustomer, "cus_P", identity.LinkEmail, "p@example.com"), "p@example.com", identity.Version{ObjectID: "cus_P", Created: 100, EventID: "evt_p1"}},
		{"evt_p1", ids(identity.LinkStripeCustomer, "cus_P", identity.LinkEmail, "p@example.com"), "p@example.com", identity.Version{ObjectID: "cus_P", Created: 100, EventID: "evt_p1"}},
		{"evt_p2", ids(identity.LinkStripeCustomer, "cus_h7", identity.LinkSubscription, "sub_h7"), "", identity.Version{ObjectID: "sub_h7", Created: 200, EventID: "evt_p2", Status: "past_due"}},
		{"evt_p3", ids(identity.LinkStripeCustomer, "cus_h8", identity.LinkInvoice, "in_P3", identity.LinkCharge, "ch_P3"), "", identity.Version{ObjectID: "in_P3", Created: 300, EventID: "evt_p3", Status: "paid"}},
		{"evt_p4", ids(identity.LinkEmail, "q@example.com", identity.LinkInvoice, "in_P4"), "", identity.Version{}},
		{"evt_p5", ids(identity.LinkStripeCustomer, "cus_Q", identity.LinkEmail, "q@example.com"), "q@example.com", identity.Version{ObjectID: "cus_Q", Created: 500, EventID: "evt_p5"}},
	}
	merged := 0
	var last identity.Resolution
	for _, s := range steps {
		res, err := store.Resolve(ctx, s.eventID, s.ids, s.email, "", s.version)
		if err != nil {
			t.Fatalf("%s: %v", s.eventID, err)
		}
		merged += len(res.Merged)
		last = res
	}
	if merged == 0 {
		t.Fatal("no merge: the merge path went unexplained")
	}
	// The same kinds of events as one batch: the plan's statements, then,
	// from the merge on, the chained resolutions'.
	batch := []identity.Input{
		{EventID: "evt_pb1", IDs: ids(identity.LinkStripeCustomer, "cus_PB", identity.LinkEmail, "pb@example.com"), Email: "pb@example.com", Authoritative: true,
			Version: identity.Version{ObjectID: "cus_PB", Created: 100, EventID: "evt_pb1", Status: "pb@example.com"}},
		{EventID: "evt_pb2", IDs: ids(identity.LinkStripeCustomer, "cus_h17", identity.LinkSubscription, "sub_h17"),
			Version: identity.Version{ObjectID: "sub_h17", Created: 200, EventID: "evt_pb2", Status: "past_due"}},
		{EventID: "evt_pb3", IDs: ids(identity.LinkStripeCustomer, "cus_h18", identity.LinkInvoice, "in_PB3", identity.LinkCharge, "ch_PB3"), Name: "H 18",
			Version: identity.Version{ObjectID: "in_PB3", Created: 300, EventID: "evt_pb3", Status: "paid"}},
		{EventID: "evt_pb4", IDs: ids(identity.LinkEmail, "qb@example.com", identity.LinkInvoice, "in_PB4")},
		{EventID: "evt_pb5", IDs: ids(identity.LinkStripeCustomer, "cus_QB", identity.LinkEmail, "qb@example.com"), Email: "qb@example.com", Authoritative: true,
			Version: identity.Version{ObjectID: "cus_QB", Created: 500, EventID: "evt_pb5"}},
		{EventID: "evt_pb6", IDs: ids(identity.LinkStripeCustomer, "cus_h19")},
	}
	res, errs, err := store.ResolveBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", batch[i].EventID, err)
		}
	}
	if len(res[4].Merged) == 0 {
		t.Fatal("no merge in the batch: its chained resolutions went unexplained")
	}
	if ok, _, err := store.LinkExternal(ctx, last.CanonicalID, identity.Identifier{Kind: identity.LinkCRMContact, Value: "hs_P"}, "crm.contact.synced:p"); err != nil || !ok {
		t.Fatalf("LinkExternal = %v, %v", ok, err)
	}
	// A pull's links: new ones, one already there, one of a customer
	// merged away (cust_h10, into cust_h11), one of nobody.
	crm := func(v string) identity.Identifier {
		return identity.Identifier{Kind: identity.LinkCRMContact, Value: v}
	}
	if _, err := store.LinkExternals(ctx, []identity.ExternalLink{
		{CanonicalID: "cust_h12", ID: crm("hs_Q")}, {CanonicalID: "cust_h13", ID: crm("hs_R")},
		{CanonicalID: last.CanonicalID, ID: crm("hs_P")}, {CanonicalID: "cust_h10", ID: crm("hs_S")},
		{CanonicalID: "cust_h14", ID: crm("hs_S")}, {CanonicalID: "cust_nobody", ID: crm("hs_T")},
	}); err != nil {
		t.Fatalf("LinkExternals: %v", err)
	}
	sent := stmts.Take()
	scans, err := testkit.SeqScans(ctx, plain, sent, "customers", "customer_links", "object_versions", "customer_merges")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scans {
		t.Error(s)
	}
	t.Logf("%d statements explained", len(sent))
}
