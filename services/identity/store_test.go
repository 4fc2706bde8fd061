package identity_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/identity"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

func newStore(t *testing.T) (*identity.Store, *pgxpool.Pool) {
	t.Helper()
	return newStoreAt(t, testkit.Postgres(t))
}

// newStoreAt opens and migrates identity's store at url.
func newStoreAt(t *testing.T, url string) (*identity.Store, *pgxpool.Pool) {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := identity.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return identity.NewStore(pool), pool
}

func count(t *testing.T, pool *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func ids(pairs ...string) []identity.Identifier {
	var out []identity.Identifier
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, identity.Identifier{Kind: pairs[i], Value: pairs[i+1]})
	}
	return out
}

// Fifty events for one new customer, handled at once, make one customer.
func TestConcurrentEventsForANewCustomerMakeOneCanonicalID(t *testing.T) {
	store, pool := newStore(t)
	var wg sync.WaitGroup
	got := make([]string, 50)
	errs := make([]error, 50)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Some events carry the Stripe id, some only the email, some both.
			var in []identity.Identifier
			switch i % 3 {
			case 0:
				in = ids(identity.LinkStripeCustomer, "cus_Concurrent1", identity.LinkEmail, "ada@example.com")
			case 1:
				in = ids(identity.LinkStripeCustomer, "cus_Concurrent1", identity.LinkInvoice, fmt.Sprintf("in_%d", i))
			case 2:
				in = ids(identity.LinkStripeCustomer, "cus_Concurrent1")
			}
			res, err := store.Resolve(context.Background(), fmt.Sprintf("evt_c%02d", i), in, "", "", identity.Version{})
			got[i], errs[i] = res.CanonicalID, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got[i] != got[0] {
			t.Fatalf("event %d resolved to %s, event 0 to %s", i, got[i], got[0])
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM customers`); n != 1 {
		t.Fatalf("%d customers, want 1", n)
	}
	if got[0] != identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: "cus_Concurrent1"}) {
		t.Errorf("canonical id %s is not derived from the Stripe customer", got[0])
	}
}

// An invoice before its customer.created, and a checkout carrying only an
// email before the customer gets that email: still one customer.
func TestOutOfOrderEventsLinkUp(t *testing.T) {
	store, pool := newStore(t)
	ctx := context.Background()
	inv, err := store.Resolve(ctx, "evt_inv", ids(identity.LinkStripeCustomer, "cus_Late", identity.LinkInvoice, "in_1"), "", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	cus, err := store.Resolve(ctx, "evt_cus", ids(identity.LinkStripeCustomer, "cus_Late"), "", "Ada", identity.Version{ObjectID: "cus_Late", Created: 100, EventID: "evt_cus"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.CanonicalID != cus.CanonicalID || cus.Name != "Ada" {
		t.Fatalf("invoice → %s, customer → %s (%q)", inv.CanonicalID, cus.CanonicalID, cus.Name)
	}

	// A checkout with only an email makes a customer of its own …
	co, err := store.Resolve(ctx, "evt_co", ids(identity.LinkEmail, "grace@example.com"), "grace@example.com", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.Resolve(ctx, "evt_c2", ids(identity.LinkStripeCustomer, "cus_Grace"), "", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	if co.CanonicalID == other.CanonicalID {
		t.Fatal("unrelated identifiers resolved to one customer")
	}
	// … until Stripe tells us cus_Grace has that email: one customer, the
	// one linked to Stripe survives, the other points at it.
	merged, err := store.Resolve(ctx, "evt_upd", ids(identity.LinkStripeCustomer, "cus_Grace", identity.LinkEmail, "grace@example.com"), "grace@example.com", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	if merged.CanonicalID != other.CanonicalID || len(merged.Merged) != 1 || merged.Merged[0] != co.CanonicalID || merged.Email != "grace@example.com" {
		t.Fatalf("merge result %+v", merged)
	}
	if n := count(t, pool, `SELECT count(*) FROM customer_links WHERE canonical_id = $1`, co.CanonicalID); n != 0 {
		t.Errorf("%d links still on the merged customer", n)
	}
	again, err := store.Resolve(ctx, "evt_again", ids(identity.LinkEmail, "grace@example.com"), "", "", identity.Version{})
	if err != nil || again.CanonicalID != other.CanonicalID {
		t.Fatalf("email after merge → %s %v", again.CanonicalID, err)
	}
}

func TestUnknownChargeCannotFoundACustomer(t *testing.T) {
	store, _ := newStore(t)
	_, err := store.Resolve(context.Background(), "evt_dp", ids(identity.LinkCharge, "ch_unseen"), "", "", identity.Version{})
	if err != identity.ErrUnknownCustomer {
		t.Fatalf("err = %v, want ErrUnknownCustomer", err)
	}
}

// A stale version never regresses state; a same-second tie is settled by
// status precedence, then by event id, the same way in any order.
func TestObjectVersions(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	sub := ids(identity.LinkStripeCustomer, "cus_V")
	apply := func(evt string, created int64, status string) bool {
		t.Helper()
		res, err := store.Resolve(ctx, evt, sub, "", "", identity.Version{ObjectID: "sub_V", Created: created, EventID: evt, Status: status})
		if err != nil {
			t.Fatal(err)
		}
		return res.Stale
	}
	if apply("evt_2", 200, "active") {
		t.Fatal("first version stale")
	}
	if !apply("evt_1", 100, "trialing") {
		t.Error("older event not stale")
	}
	if apply("evt_2", 200, "active") {
		t.Error("redelivery of the applied event is stale")
	}
	if !apply("evt_3", 200, "trialing") {
		t.Error("same-second tie with an earlier status not stale")
	}
	if apply("evt_4", 200, "canceled") {
		t.Error("same-second tie with a later status stale")
	}
	if apply("evt_5", 300, "active") {
		t.Error("newer event stale")
	}
}

// With the Stripe API at hand, a same-second tie is settled by the object's
// current state at Stripe, whichever version arrives first.
func TestSameSecondTieFollowsStripe(t *testing.T) {
	for _, order := range [][2]string{{"active", "past_due"}, {"past_due", "active"}} {
		t.Run(order[0]+" first", func(t *testing.T) {
			store, pool := newStore(t)
			ctx := context.Background()
			apply := func(status string) identity.Resolution {
				t.Helper()
				v := identity.Version{ObjectID: "sub_Tie", Created: 500, EventID: "evt_" + status, Status: status, AskOnTie: true}
				res, err := store.Resolve(ctx, v.EventID, ids(identity.LinkStripeCustomer, "cus_Tie"), "", "", v)
				if err == identity.ErrVersionTie {
					v.AskOnTie, v.StripeState = false, "active" // what Stripe answers
					res, err = store.Resolve(ctx, v.EventID, ids(identity.LinkStripeCustomer, "cus_Tie"), "", "", v)
				}
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			apply(order[0])
			apply(order[1])
			var status string
			if err := pool.QueryRow(ctx, `SELECT status FROM object_versions WHERE object_id = 'sub_Tie'`).Scan(&status); err != nil {
				t.Fatal(err)
			}
			// Status precedence alone would pick past_due; Stripe says active.
			if status != "active" {
				t.Fatalf("applied status %q, want Stripe's current %q", status, "active")
			}
		})
	}
}

// The canonical id does not depend on whether the email-only checkout or the
// Stripe customer arrives first.
func TestCanonicalIDIndependentOfOrder(t *testing.T) {
	checkout := ids(identity.LinkEmail, "ivy@example.com")
	created := ids(identity.LinkStripeCustomer, "cus_Ivy", identity.LinkEmail, "ivy@example.com")
	want := identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: "cus_Ivy"})
	for _, order := range [][2][]identity.Identifier{{checkout, created}, {created, checkout}} {
		store, _ := newStore(t)
		ctx := context.Background()
		var last identity.Resolution
		for i, in := range order {
			res, err := store.Resolve(ctx, fmt.Sprintf("evt_%d", i), in, "ivy@example.com", "", identity.Version{})
			if err != nil {
				t.Fatal(err)
			}
			last = res
		}
		if last.CanonicalID != want {
			t.Errorf("resolved to %s, want %s (derived from the Stripe customer) in every order", last.CanonicalID, want)
		}
	}
}

// Two Stripe customers sharing an email stay two customers: a typed email
// must not move a Stripe customer's events to someone else.
func TestEmailNeverMergesTwoStripeCustomers(t *testing.T) {
	store, pool := newStore(t)
	ctx := context.Background()
	a, err := store.Resolve(ctx, "evt_a", ids(identity.LinkStripeCustomer, "cus_A", identity.LinkEmail, "shared@example.com"), "shared@example.com", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Resolve(ctx, "evt_b", ids(identity.LinkStripeCustomer, "cus_B", identity.LinkEmail, "shared@example.com"), "shared@example.com", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	if a.CanonicalID == b.CanonicalID || len(b.Merged) != 0 {
		t.Fatalf("cus_A → %s, cus_B → %s (merged %v): want two customers", a.CanonicalID, b.CanonicalID, b.Merged)
	}
	if n := count(t, pool, `SELECT count(*) FROM suspected_duplicates`); n != 1 {
		t.Errorf("%d suspected duplicates recorded, want 1", n)
	}
}

// An old invoice's customer_email does not undo a newer customer email.
func TestOnlyTheCustomerObjectSetsTheProfile(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	if _, err := store.ResolveInput(ctx, identity.Input{EventID: "evt_cu", IDs: ids(identity.LinkStripeCustomer, "cus_P"), Email: "new@example.com", Authoritative: true}); err != nil {
		t.Fatal(err)
	}
	res, err := store.ResolveInput(ctx, identity.Input{EventID: "evt_inv", IDs: ids(identity.LinkStripeCustomer, "cus_P", identity.LinkInvoice, "in_P"), Email: "old@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Email != "new@example.com" {
		t.Fatalf("profile email %q, want the customer object's new@example.com", res.Email)
	}
}

func TestGuestChargeFoundsACustomerOnlyWhenConfirmed(t *testing.T) {
	store, _ := newStore(t)
	ctx := context.Background()
	in := identity.Input{EventID: "evt_dp", IDs: ids(identity.LinkCharge, "ch_guest")}
	if _, err := store.ResolveInput(ctx, in); err != identity.ErrUnknownCustomer {
		t.Fatalf("unconfirmed guest charge: %v, want ErrUnknownCustomer", err)
	}
	in.GuestCharge = true
	res, err := store.ResolveInput(ctx, in)
	if err != nil || res.CanonicalID != identity.CanonicalID(identity.Identifier{Kind: identity.LinkCharge, Value: "ch_guest"}) {
		t.Fatalf("confirmed guest charge → %s %v", res.CanonicalID, err)
	}
}

// Two events naming the same two customers through identifiers that sort
// the other way round — A by X's email and Y's invoice, B by Y's email and
// X's invoice — handled at once, for many such pairs: each pair merges into
// one customer and no error surfaces (the customers are locked in id
// order, not identifier order, and a deadlock left is retried inside).
func TestConcurrentCrosswiseEventsMerge(t *testing.T) {
	store, pool := newStore(t)
	ctx := context.Background()
	const pairs = 24
	for k := range pairs {
		x, y := fmt.Sprintf("x%d@example.com", k), fmt.Sprintf("y%d@example.com", k)
		inX, inY := fmt.Sprintf("in_ofx%d", k), fmt.Sprintf("in_ofy%d", k)
		if _, err := store.Resolve(ctx, "evt_sx"+strconv.Itoa(k), ids(identity.LinkEmail, x, identity.LinkInvoice, inX), x, "", identity.Version{}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Resolve(ctx, "evt_sy"+strconv.Itoa(k), ids(identity.LinkEmail, y, identity.LinkInvoice, inY), y, "", identity.Version{}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*pairs)
	for k := range pairs {
		x, y := fmt.Sprintf("x%d@example.com", k), fmt.Sprintf("y%d@example.com", k)
		inX, inY := fmt.Sprintf("in_ofx%d", k), fmt.Sprintf("in_ofy%d", k)
		for _, in := range [][]identity.Identifier{ids(identity.LinkEmail, x, identity.LinkInvoice, inY), ids(identity.LinkEmail, y, identity.LinkInvoice, inX)} {
			wg.Go(func() {
				if _, err := store.Resolve(ctx, fmt.Sprintf("evt_cross%d_%s", k, in[0].Value), in, "", "", identity.Version{}); err != nil {
					errs <- fmt.Errorf("pair %d: %w", k, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if live := count(t, pool, `SELECT count(*) FROM customers WHERE merged_into IS NULL`); live != pairs {
		t.Errorf("%d customers not merged, want %d (one per pair)", live, pairs)
	}
}

// A CRM contact id links to its customer once; later syncs of it are
// answered as linked, another customer's claim is refused, and after a
// merge the id belongs to the survivor whichever of the two names it.
func TestLinkExternal(t *testing.T) {
	store, pool := newStore(t)
	ctx := context.Background()
	a, err := store.Resolve(ctx, "evt_la", ids(identity.LinkEmail, "la@example.com"), "la@example.com", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Resolve(ctx, "evt_lb", ids(identity.LinkEmail, "lb@example.com"), "lb@example.com", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	contact := identity.Identifier{Kind: identity.LinkCRMContact, Value: "hubspot:501"}
	link := func(cid string) bool {
		t.Helper()
		ok, owner, err := store.LinkExternal(ctx, cid, contact, "crm.contact.synced:x")
		if err != nil {
			t.Fatal(err)
		}
		if !ok && owner == cid {
			t.Fatalf("LinkExternal(%s) refused, naming itself as the owner", cid)
		}
		return ok
	}
	owner := func() string {
		t.Helper()
		var o string
		if err := pool.QueryRow(ctx, `SELECT canonical_id FROM customer_links WHERE kind = $1 AND value = $2`, contact.Kind, contact.Value).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	first := link(a.CanonicalID)
	again := link(a.CanonicalID) // a later sync: answered by the read
	if !first || !again || owner() != a.CanonicalID {
		t.Fatalf("the contact is not linked to its customer %s (owner %s; %v, %v)", a.CanonicalID, owner(), first, again)
	}
	if link(b.CanonicalID) || owner() != a.CanonicalID {
		t.Fatalf("another customer took the contact: owner %s", owner())
	}
	merged, err := store.Resolve(ctx, "evt_lab", ids(identity.LinkEmail, "la@example.com", identity.LinkEmail, "lb@example.com"), "", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	survivor := merged.CanonicalID
	if owner() != survivor {
		t.Fatalf("after the merge the contact belongs to %s, want the survivor %s", owner(), survivor)
	}
	for _, cid := range []string{a.CanonicalID, b.CanonicalID} {
		if !link(cid) {
			t.Errorf("a sync naming %s (merged into %s) is refused", cid, survivor)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM customer_links WHERE kind = 'crm_contact'`); n != 1 {
		t.Errorf("%d crm_contact links, want 1", n)
	}
	// A contact synced for the customer merged away, never linked before,
	// goes to the survivor.
	loser := a.CanonicalID
	if loser == survivor {
		loser = b.CanonicalID
	}
	late := identity.Identifier{Kind: identity.LinkCRMContact, Value: "hubspot:502"}
	ok, got, err := store.LinkExternal(ctx, loser, late, "crm.contact.synced:y")
	if err != nil || !ok || got != survivor {
		t.Fatalf("LinkExternal(merged %s, new contact) = %v, %q, %v; want linked to the survivor %s", loser, ok, got, err, survivor)
	}
	var lateOwner string
	if err := pool.QueryRow(ctx, `SELECT canonical_id FROM customer_links WHERE kind = $1 AND value = $2`, late.Kind, late.Value).Scan(&lateOwner); err != nil || lateOwner != survivor {
		t.Errorf("the late contact belongs to %q (%v), want the survivor %s", lateOwner, err, survivor)
	}
}

// LinkExternals answers a set as LinkExternal would answer its links one
// after another, in the set's order: a link already there is answered by
// the read; of two customers naming one new contact, the first takes it;
// a customer merged away has its survivor linked; an unknown one is
// pgx.ErrNoRows for that link alone.
func TestLinkExternalsAnswersAsOneAfterAnother(t *testing.T) {
	store, pool := newStore(t)
	ctx := context.Background()
	customer := func(evt, email string) string {
		t.Helper()
		r, err := store.Resolve(ctx, evt, ids(identity.LinkEmail, email), email, "", identity.Version{})
		if err != nil {
			t.Fatal(err)
		}
		return r.CanonicalID
	}
	a, b, c := customer("evt_sa", "sa@example.com"), customer("evt_sb", "sb@example.com"), customer("evt_sc", "sc@example.com")
	d, e := customer("evt_sd", "sd@example.com"), customer("evt_se", "se@example.com")
	merged, err := store.Resolve(ctx, "evt_sde", ids(identity.LinkEmail, "sd@example.com", identity.LinkEmail, "se@example.com"), "", "", identity.Version{})
	if err != nil {
		t.Fatal(err)
	}
	survivor, loser := merged.CanonicalID, d
	if loser == survivor {
		loser = e
	}
	contact := func(n int) identity.Identifier {
		return identity.Identifier{Kind: identity.LinkCRMContact, Value: fmt.Sprintf("hubspot:60%d", n)}
	}
	if ok, _, err := store.LinkExternal(ctx, a, contact(1), "crm.contact.synced:s0"); err != nil || !ok {
		t.Fatalf("LinkExternal = %v, %v", ok, err)
	}
	set := []struct {
		cid     string
		contact int
		linked  bool
		owner   string
		noRows  bool
	}{
		{a, 1, true, a, false},               // already linked: the read answers
		{b, 1, false, a, false},              // another customer's contact
		{b, 2, true, b, false},               // new
		{c, 2, false, b, false},              // new, but named first by b in this set
		{loser, 3, true, survivor, false},    // merged away: the survivor takes it
		{"cus_unknown", 4, false, "", true},  // no such customer
		{c, 5, true, c, false},               // new …
		{c, 5, true, c, false},               // … and again in the same set
		{survivor, 3, true, survivor, false}, // the survivor's, linked above
		{loser, 7, true, survivor, false},    // merged away, new: linked on its own, yet first …
		{b, 7, false, survivor, false},       // … so b, after it, is refused
		{"cus_unknown", 8, false, "", true},  // no such customer …
		{c, 8, true, c, false},               // … so the id is c's
	}
	in := make([]identity.ExternalLink, len(set))
	for i, l := range set {
		in[i] = identity.ExternalLink{CanonicalID: l.cid, ID: contact(l.contact), SourceEventID: fmt.Sprintf("crm.contact.synced:s%d", i+1)}
	}
	out, err := store.LinkExternals(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range set {
		o := out[i]
		if l.noRows {
			if !errors.Is(o.Err, pgx.ErrNoRows) {
				t.Errorf("link %d (unknown customer): %+v, want pgx.ErrNoRows", i, o)
			}
			continue
		}
		if o.Err != nil || o.Linked != l.linked || o.Owner != l.owner {
			t.Errorf("link %d (%s, contact %d) = %+v, want linked %v, owner %s", i, l.cid, l.contact, o, l.linked, l.owner)
		}
	}
	want := map[string]string{"hubspot:601": a, "hubspot:602": b, "hubspot:603": survivor, "hubspot:605": c, "hubspot:607": survivor, "hubspot:608": c}
	rows, err := pool.Query(ctx, `SELECT value, canonical_id FROM customer_links WHERE kind = $1`, identity.LinkCRMContact)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var v [2]string
		return v, r.Scan(&v[0], &v[1])
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d crm_contact links, want %d: %v", len(got), len(want), got)
	}
	for _, g := range got {
		if want[g[0]] != g[1] {
			t.Errorf("contact %s linked to %s, want %s", g[0], g[1], want[g[0]])
		}
	}
}

// A set of new links costs one transaction, whatever its size, and a set
// already linked none: the read answers it.
func TestLinkExternalsCommitsOnceForASet(t *testing.T) {
	ctx := context.Background()
	url := testkit.Postgres(t)
	newStoreAt(t, url)
	traced, stmts := testkit.TracedPool(t, url)
	store := identity.NewStore(traced)
	var set []identity.ExternalLink
	for i := range 10 {
		email := fmt.Sprintf("set%d@example.com", i)
		r, err := store.Resolve(ctx, fmt.Sprintf("evt_set%d", i), ids(identity.LinkEmail, email), email, "", identity.Version{})
		if err != nil {
			t.Fatal(err)
		}
		set = append(set, identity.ExternalLink{CanonicalID: r.CanonicalID,
			ID: identity.Identifier{Kind: identity.LinkCRMContact, Value: fmt.Sprintf("hubspot:70%d", i)}, SourceEventID: fmt.Sprintf("crm.contact.synced:set%d", i)})
	}
	commits := func() int {
		n := 0
		for _, st := range stmts.Take() {
			if strings.TrimSpace(st.SQL) == "COMMIT" {
				n++
			}
		}
		return n
	}
	for _, want := range []int{1, 0} { // new, then already linked
		commits()
		out, err := store.LinkExternals(ctx, set)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			if o.Err != nil || !o.Linked || o.Owner != set[i].CanonicalID {
				t.Fatalf("link %d: %+v, want linked to %s", i, o, set[i].CanonicalID)
			}
		}
		if n := commits(); n != want {
			t.Errorf("%d links cost %d commits, want %d", len(set), n, want)
		}
	}
}

// A resolution that fails after it has written (a same-second tie found
// only once the new links are in) leaves nothing behind, and the
// connection it ran on serves the next resolution.
func TestFailedResolutionLeavesNothing(t *testing.T) {
	store, pool := newStore(t)
	ctx := context.Background()
	first := identity.Version{ObjectID: "sub_Roll", Created: 700, EventID: "evt_roll1", Status: "active"}
	if _, err := store.Resolve(ctx, "evt_roll1", ids(identity.LinkStripeCustomer, "cus_Roll", identity.LinkSubscription, "sub_Roll"), "", "", first); err != nil {
		t.Fatal(err)
	}
	tie := identity.Version{ObjectID: "sub_Roll", Created: 700, EventID: "evt_roll2", Status: "past_due", AskOnTie: true}
	in := ids(identity.LinkStripeCustomer, "cus_Roll", identity.LinkSubscription, "sub_Roll", identity.LinkInvoice, "in_Roll2", identity.LinkEmail, "roll@example.com")
	for range 10 { // more times than the pool has connections
		if _, err := store.Resolve(ctx, "evt_roll2", in, "roll@example.com", "Roll", tie); !errors.Is(err, identity.ErrVersionTie) {
			t.Fatalf("Resolve = %v, want ErrVersionTie", err)
		}
	}
	if n := count(t, pool, `SELECT count(*) FROM customer_links WHERE value IN ('in_Roll2', 'roll@example.com')`); n != 0 {
		t.Errorf("%d links of the failed resolution were kept", n)
	}
	var email string
	if err := pool.QueryRow(ctx, `SELECT email FROM customers WHERE canonical_id = $1`,
		identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: "cus_Roll"})).Scan(&email); err != nil || email != "" {
		t.Errorf("profile after the failed resolution: %q, %v", email, err)
	}
	tie.AskOnTie, tie.StripeState = false, "past_due"
	res, err := store.Resolve(ctx, "evt_roll2", in, "roll@example.com", "Roll", tie)
	if err != nil || res.Stale {
		t.Fatalf("the retry with Stripe's answer: %+v, %v", res, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM customer_links WHERE value IN ('in_Roll2', 'roll@example.com')`); n != 2 {
		t.Errorf("%d links after the retry, want 2", n)
	}
}
