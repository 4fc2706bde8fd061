package identity_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/identity"
)

// TestLifecyclesAnyOrder is the property behind "one canonical customer
// per person no matter how Stripe delivers": lifecycles of one to three
// customers, delivered (a) once each in order and (b) shuffled with every
// event delivered two or three times, each into a fresh database and a
// fresh broker, end in the same identity state and publish the same set of
// billing.> message ids.
//
// Identity state: every Stripe customer's canonical id is derived from its
// Stripe id; the partition of identifiers into customers (which (kind,
// value) pairs share a customer) and those ids are the same; so are each
// live customer's email and name, object_versions and which customers are
// suspected duplicates. Billing: the same message ids, and for each the
// same message but for the snapshot of when identity handled it (see
// withoutSnapshot), except merge announcements (see compareBilling).
//
// When two Stripe customers share an email (one person who checked out
// twice), they stay two customers whatever the order, but the shared email
// (and what an email-only checkout brought with it) belongs to whichever
// Stripe customer identity saw first: the partition is then compared for
// the Stripe customers only.
//
// Each case costs two brokers and two databases: the number of cases
// defaults to 10 (-rapid.checks or RAPID_CHECKS overrides it).
func TestLifecyclesAnyOrder(t *testing.T) {
	defaultRapidChecks(t, 10)
	rapid.Check(t, func(rt *rapid.T) {
		tb := rapidTB{TB: t, rt: rt}
		gen := genLifecycles(rt, tb)

		inOrder := newDirectRun(tb)
		inOrder.handleAll(tb, gen.events)

		shuffled := drawDeliveries(rt, gen.events, 2, 3)
		anyOrder := newDirectRun(tb)
		anyOrder.handleAll(tb, shuffled)

		a, b := inOrder.state(tb), anyOrder.state(tb)
		compareStates(tb, a, b, !gen.sharedEmail)
		compareBilling(tb, inOrder.billing(tb), anyOrder.billing(tb), !gen.emailOnlyCheckout)
	})
}

// drawDeliveries draws a delivery order of events, each delivered lo to hi
// times. Deliveries are drawn as "<event id> <type>" labels, so
// that a failing case prints a readable order.
func drawDeliveries(rt *rapid.T, events []stripeEvent, lo, hi int) []stripeEvent {
	byLabel := map[string]stripeEvent{}
	var labels []string
	for _, e := range events {
		label := e.ID + " " + e.Type
		byLabel[label] = e
		for range rapid.IntRange(lo, hi).Draw(rt, "copies of "+e.ID) {
			labels = append(labels, label)
		}
	}
	var shuffled []stripeEvent
	for _, label := range rapid.Permutation(labels).Draw(rt, "delivery order") {
		shuffled = append(shuffled, byLabel[label])
	}
	return shuffled
}

// --- generated lifecycles ---------------------------------------------------

type generated struct {
	events []stripeEvent // every customer's history, in Stripe's order
	// emailOnlyCheckout: some checkout named no Stripe customer.
	// sharedEmail: two Stripe customers are one person (same email).
	emailOnlyCheckout, sharedEmail bool
}

var propPlans = []plan{
	{Price: "price_PropA", Unit: 900, Quantity: 1},
	{Price: "price_PropB", Unit: 2000, Quantity: 1},
	{Price: "price_PropC", Unit: 4900, Quantity: 1},
	{Price: "price_PropSeat", Unit: 1200, Quantity: 3},
}

// genLifecycles draws one to three customers' histories: a signup through
// checkout (with or without the Stripe customer), customer created and
// given its email, a subscription with or without a trial, a first
// payment, then up to four of plan changes (random price and quantity),
// payment failures (one to three attempts, recovered or final, with the
// subscription going past due and back), renewals and withdrawn
// cancellations, then optionally the cancellation, refunds and a dispute.
// Gaps between events are often zero seconds, so versions tie.
//
// A customer's email and name never change here. When they do, identity's
// profile depends on the order: a checkout.session.completed may replace
// the profile (it is authoritative) but has no version, so a checkout
// carrying the email from before a customer.updated overwrites the newer
// email when it is handled last.
func genLifecycles(rt *rapid.T, tb testing.TB) generated {
	var g generated
	gap := rapid.SampledFrom([]int64{0, 0, 1, 60, 3600, day})
	customers := rapid.IntRange(1, 3).Draw(rt, "customers")
	var firstEmail, firstName string
	var histories [][]stripeEvent
	for k := range customers {
		tag := fmt.Sprintf("p%d", k)
		email, name := fmt.Sprintf("buyer%d@example.com", k), fmt.Sprintf("Buyer %d", k)
		if k == 0 {
			firstEmail, firstName = email, name
		} else if rapid.IntRange(0, 3).Draw(rt, "same person as customer 0") == 0 {
			email, name = firstEmail, firstName // a second Stripe customer for one person
			g.sharedEmail = true
		}
		start := lifeStart + rapid.Int64Range(0, 2*day).Draw(rt, "start")
		h := newHistory(tb, tag, fmt.Sprintf("cus_Prop%d", k), email, name, start)

		withCustomer := rapid.IntRange(0, 3).Draw(rt, "checkout names the customer") != 0
		g.emailOnlyCheckout = g.emailOnlyCheckout || !withCustomer
		h.checkout(0, withCustomer)
		h.customerCreated(gap.Draw(rt, "gap"))
		h.customerEmailSet(gap.Draw(rt, "gap"))
		trial := rapid.Bool().Draw(rt, "trial")
		h.subscriptionCreated(gap.Draw(rt, "gap"), rapid.SampledFrom(propPlans).Draw(rt, "plan"), trial)
		if trial {
			h.trialEnded()
		}

		invoices, charges := 0, 0
		var paid []payment
		pay := func(reason string, attempt int64, amount int64) payment {
			charges++
			return payment{Invoice: fmt.Sprintf("in_%s%04d", tag, invoices), Charge: fmt.Sprintf("ch_%s%04d", tag, charges),
				Amount: amount, Attempt: attempt, Reason: reason}
		}
		invoices++
		first := pay("subscription_create", 1, h.plan.mrr())
		h.invoicePaid(gap.Draw(rt, "gap"), first)
		paid = append(paid, first)

		for range rapid.IntRange(0, 4).Draw(rt, "steps") {
			switch rapid.SampledFrom([]string{"plan", "failure", "renewal", "cancel withdrawn"}).Draw(rt, "step") {
			case "plan":
				p := rapid.SampledFrom(propPlans).Draw(rt, "new plan")
				p.Quantity = rapid.Int64Range(1, 5).Draw(rt, "quantity")
				if p == h.plan {
					p.Quantity++
				}
				h.changePlan(gap.Draw(rt, "gap"), p)
			case "failure":
				invoices++
				attempts := rapid.Int64Range(1, 3).Draw(rt, "failed attempts")
				recovered := rapid.Bool().Draw(rt, "recovered")
				pastDue := rapid.Bool().Draw(rt, "goes past due") && h.status == "active"
				for a := int64(1); a <= attempts; a++ {
					p := pay("subscription_cycle", a, h.plan.mrr())
					wait := gap.Draw(rt, "gap")
					if recovered || a < attempts {
						p.NextAttempt = h.clock + wait + 3*day
					}
					h.invoicePaymentFailed(wait, p)
					if a == 1 && pastDue {
						h.setStatus(gap.Draw(rt, "gap"), "past_due")
					}
				}
				if recovered {
					p := pay("subscription_cycle", attempts+1, h.plan.mrr())
					h.invoicePaid(gap.Draw(rt, "gap"), p)
					paid = append(paid, p)
					if pastDue {
						h.setStatus(gap.Draw(rt, "gap"), "active")
					}
				} else if pastDue {
					h.setStatus(gap.Draw(rt, "gap"), "unpaid")
				}
			case "renewal":
				invoices++
				p := pay("subscription_cycle", 1, h.plan.mrr())
				h.invoicePaid(gap.Draw(rt, "gap"), p)
				paid = append(paid, p)
			case "cancel withdrawn":
				if !h.cancelAtPeriodEnd {
					h.scheduleCancel(gap.Draw(rt, "gap"))
					h.withdrawCancel(gap.Draw(rt, "gap"))
				}
			}
		}
		if rapid.Bool().Draw(rt, "canceled") {
			if !h.cancelAtPeriodEnd {
				h.scheduleCancel(gap.Draw(rt, "gap"))
			}
			h.subscriptionDeleted()
		}
		refunded := map[int]int64{}
		for range rapid.IntRange(0, 2).Draw(rt, "refunds") {
			i := rapid.IntRange(0, len(paid)-1).Draw(rt, "refunded payment")
			left := paid[i].Amount - refunded[i]
			if left == 0 {
				continue
			}
			amount := rapid.Int64Range(1, left).Draw(rt, "refund amount")
			h.refund(max(gap.Draw(rt, "gap"), 1), paid[i], refunded[i], amount, rapid.Bool().Draw(rt, "refund names the customer"))
			refunded[i] += amount
		}
		if rapid.Bool().Draw(rt, "disputed") {
			i := rapid.IntRange(0, len(paid)-1).Draw(rt, "disputed payment")
			h.dispute(gap.Draw(rt, "gap"), "dp_"+tag+"0001", paid[i])
		}
		histories = append(histories, h.events)
	}
	// In order: merged by created time, each customer's own order kept.
	for _, hs := range histories {
		g.events = append(g.events, hs...)
	}
	slices.SortStableFunc(g.events, func(a, b stripeEvent) int { return int(a.Created - b.Created) })
	return g
}

// --- running identity's handler directly ------------------------------------

// directRun is identity's Service on a fresh broker and database, called
// directly (no consumer): each Stripe event is a consumer.Message, and one
// that fails with a retryable error (a dispute before the invoice that
// links its charge) is handed again after the others, as the consumer's
// redelivery would.
type directRun struct {
	js   jetstream.JetStream
	pool *pgxpool.Pool
	svc  *identity.Service
}

func newDirectRun(tb testing.TB) *directRun {
	tb.Helper()
	return newDirectRunWith(tb, nil)
}

// newDirectRunWith is newDirectRun with identity reading the Stripe API
// through stripe (nil: no API).
func newDirectRunWith(tb testing.TB, stripe identity.StripeReader) *directRun {
	tb.Helper()
	ctx := context.Background()
	b := testkit.NATS(tb)
	_, js := b.Connect(tb)
	pool, err := postgres.Open(ctx, testkit.Postgres(tb), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := identity.Migrate(ctx, pool); err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &directRun{js: js, pool: pool, svc: identity.NewService(identity.NewStore(pool), js, stripe, log)}
}

func (r *directRun) handleAll(tb testing.TB, events []stripeEvent) {
	tb.Helper()
	queue := events
	attempt := 1
	for len(queue) > 0 {
		var again []stripeEvent
		for _, e := range queue {
			m := &consumer.Message{Subject: wire.StripeEventSubject(e.Type), Data: e.Raw,
				Header: nats.Header{wire.HeaderMsgID: {e.ID}}, ID: e.ID, Attempt: attempt}
			err := r.svc.Handle(context.Background(), m)
			switch {
			case err == nil:
			case errclass.Of(err).Retryable():
				again = append(again, e)
			default:
				tb.Fatalf("%s %s: %v (%s)", e.Type, e.ID, err, errclass.Of(err))
			}
		}
		if len(again) == len(queue) {
			var ids []string
			for _, e := range again {
				ids = append(ids, e.Type+" "+e.ID)
			}
			tb.Fatalf("no progress: %d events keep failing: %v", len(again), ids)
		}
		queue = again
		attempt++
	}
}

// identityState is identity's tables, as far as they must not depend on
// the delivery order.
type identityState struct {
	links      map[identity.Identifier]string // → canonical id
	customers  map[string][2]string           // live canonical id → email, name
	versions   []string                       // object_versions rows
	duplicates []string                       // suspected_duplicates pairs
}

func (r *directRun) state(tb testing.TB) identityState {
	tb.Helper()
	ctx := context.Background()
	s := identityState{links: map[identity.Identifier]string{}, customers: map[string][2]string{}}
	rows, err := r.pool.Query(ctx, `SELECT kind, value, canonical_id FROM customer_links`)
	if err != nil {
		tb.Fatal(err)
	}
	var kind, value, cid string
	if _, err := pgx.ForEachRow(rows, []any{&kind, &value, &cid}, func() error {
		s.links[identity.Identifier{Kind: kind, Value: value}] = cid
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	rows, err = r.pool.Query(ctx, `SELECT canonical_id, email, name FROM customers WHERE merged_into IS NULL`)
	if err != nil {
		tb.Fatal(err)
	}
	var email, name string
	if _, err := pgx.ForEachRow(rows, []any{&cid, &email, &name}, func() error {
		s.customers[cid] = [2]string{email, name}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	column := func(q string) []string {
		rows, err := r.pool.Query(ctx, q)
		if err != nil {
			tb.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatal(err)
		}
		return out
	}
	s.versions = column(`SELECT object_id || ' ' || created || ' ' || event_id || ' ' || status FROM object_versions ORDER BY 1`)
	s.duplicates = column(`SELECT customer_a || ' ' || customer_b FROM suspected_duplicates ORDER BY 1`)
	// Every link names a live customer and every live customer has links:
	// a merge moves all links to the survivor.
	linked := map[string]bool{}
	for id, c := range s.links {
		linked[c] = true
		if _, ok := s.customers[c]; !ok {
			tb.Errorf("%s %s is linked to %s, which is not a live customer", id.Kind, id.Value, c)
		}
	}
	for c := range s.customers {
		if !linked[c] {
			tb.Errorf("live customer %s has no links", c)
		}
	}
	// A Stripe customer decides: its customer's id is derived from it, and
	// no customer has two.
	stripeOf := map[string]string{}
	for id, c := range s.links {
		if id.Kind != identity.LinkStripeCustomer {
			continue
		}
		if want := identity.CanonicalID(id); c != want {
			tb.Errorf("%s belongs to %s, want %s (derived from it)", id.Value, c, want)
		}
		if other, ok := stripeOf[c]; ok {
			tb.Errorf("%s holds two Stripe customers, %s and %s", c, other, id.Value)
		}
		stripeOf[c] = id.Value
	}
	return s
}

// customers describes each customer by its identifiers and profile; with
// stripeOnly, by its Stripe customer id alone.
func (s identityState) customerList(stripeOnly bool) map[string]string {
	groups := map[string][]string{}
	for id, c := range s.links {
		if !stripeOnly || id.Kind == identity.LinkStripeCustomer {
			groups[c] = append(groups[c], id.Kind+":"+id.Value)
		}
	}
	out := map[string]string{}
	for c, ids := range groups {
		slices.Sort(ids)
		p := s.customers[c]
		out[strings.Join(ids, " ")] = fmt.Sprintf("%s email=%q name=%q", c, p[0], p[1])
	}
	return out
}

// compareStates compares the in-order state a with the any-order state b.
// partition false compares the customers by their Stripe ids only.
func compareStates(tb testing.TB, a, b identityState, partition bool) {
	tb.Helper()
	ca, cb := a.customerList(!partition), b.customerList(!partition)
	for _, k := range slices.Sorted(maps.Keys(ca)) {
		if pb, ok := cb[k]; !ok {
			tb.Errorf("in order, one customer has [%s]; in any order no customer has exactly these identifiers", k)
		} else if pb != ca[k] {
			tb.Errorf("customer [%s]: %s in order, %s in any order", k, ca[k], pb)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cb)) {
		if _, ok := ca[k]; !ok {
			tb.Errorf("in any order, one customer has [%s]; in order no customer has exactly these identifiers", k)
		}
	}
	if !slices.Equal(a.versions, b.versions) {
		tb.Errorf("object_versions differ:\nin order  %v\nany order %v", a.versions, b.versions)
	}
	// Which pairs are recorded depends on which Stripe customer got the
	// shared email first (each later one is paired with it); which
	// customers are suspected to be one does not.
	if da, db := a.duplicateGroups(), b.duplicateGroups(); !slices.Equal(da, db) {
		tb.Errorf("suspected duplicates differ:\nin order  %v (pairs %v)\nany order %v (pairs %v)", da, a.duplicates, db, b.duplicates)
	}
}

// duplicateGroups are the sets of customers connected by
// suspected_duplicates pairs, each sorted, in order.
func (s identityState) duplicateGroups() []string {
	group := map[string]string{} // customer → a representative
	find := func(c string) string {
		for group[c] != "" && group[c] != c {
			c = group[c]
		}
		return c
	}
	for _, pair := range s.duplicates {
		x, y, _ := strings.Cut(pair, " ")
		if group[x] == "" {
			group[x] = x
		}
		if group[y] == "" {
			group[y] = y
		}
		group[find(x)] = find(y)
	}
	members := map[string][]string{}
	for c := range group {
		members[find(c)] = append(members[find(c)], c)
	}
	var out []string
	for _, m := range members {
		slices.Sort(m)
		out = append(out, strings.Join(m, "+"))
	}
	slices.Sort(out)
	return out
}

// billing returns the stored billing.> messages by id, failing if one id
// was stored twice (the duplicate window absorbs republished ids).
func (r *directRun) billing(tb testing.TB) map[string]billingMsg {
	tb.Helper()
	out := map[string]billingMsg{}
	for _, m := range billingMessages(tb, r.js) {
		if _, dup := out[m.MsgID]; dup {
			tb.Errorf("%s stored twice", m.MsgID)
		}
		out[m.MsgID] = m
	}
	return out
}

// compareBilling: the same message ids, and for each the same message but
// for its snapshot of when identity handled the event (withoutSnapshot),
// and, unless sameIDs, the customer ids: a message derived before an
// email-only customer was merged into its Stripe customer carries the
// email-only customer's id and no Stripe customer.
//
// Merge announcements (billing.customer.upserted:<evt>:merged) are the
// exception: a merge happens only in orders where an email-only checkout
// founded a customer before its Stripe customer was known, so they are
// checked on their own (checkMerges), not compared.
func compareBilling(tb testing.TB, a, b map[string]billingMsg, sameIDs bool) {
	tb.Helper()
	if len(a) == 0 {
		tb.Fatal("no billing messages at all")
	}
	checkMerges(tb, "in order", a)
	checkMerges(tb, "any order", b)
	for _, id := range slices.Sorted(maps.Keys(a)) {
		if mergeAnnouncement(id) {
			continue
		}
		mb, ok := b[id]
		if !ok {
			tb.Errorf("%s published in order, not in any order", id)
			continue
		}
		ea, eb := snapshotless(a[id].Event, sameIDs), snapshotless(mb.Event, sameIDs)
		if !proto.Equal(ea, eb) {
			tb.Errorf("%s differs:\nin order\n%s\nany order\n%s", id, text(ea), text(eb))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[id]; !ok && !mergeAnnouncement(id) {
			tb.Errorf("%s published in any order, not in order", id)
		}
	}
}

func mergeAnnouncement(msgID string) bool {
	return strings.HasPrefix(msgID, subjects.BillingCustomerUpserted+":") && strings.HasSuffix(msgID, ":merged")
}

// checkMerges: each merge announcement names the customers merged, each
// one that earlier messages of the run carried, into a Stripe customer's.
func checkMerges(tb testing.TB, run string, msgs map[string]billingMsg) {
	tb.Helper()
	used := map[string]bool{}
	for id, m := range msgs {
		if !mergeAnnouncement(id) {
			used[m.Event.GetMeta().GetCanonicalCustomerId()] = true
		}
	}
	for id, m := range msgs {
		if !mergeAnnouncement(id) {
			continue
		}
		u, ok := m.Event.(*billingv1.CustomerUpserted)
		if !ok || len(u.GetMergedCanonicalIds()) == 0 {
			tb.Errorf("%s: %s names no merged customer", run, id)
			continue
		}
		survivor := u.GetMeta().GetCanonicalCustomerId()
		if cus := u.GetMeta().GetStripeCustomerId(); survivor != identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: cus}) {
			tb.Errorf("%s: %s merges into %s, not the customer of its Stripe customer %q", run, id, survivor, cus)
		}
		for _, loser := range u.GetMergedCanonicalIds() {
			if loser == survivor || !used[loser] {
				tb.Errorf("%s: %s merges %s, which no other message carried", run, id, loser)
			}
		}
	}
}

func snapshotless(m subjects.BillingEvent, sameIDs bool) proto.Message {
	c := withoutSnapshot(m)
	if !sameIDs {
		c.GetMeta().CanonicalCustomerId, c.GetMeta().StripeCustomerId = "", ""
		if u, ok := c.(*billingv1.CustomerUpserted); ok {
			u.StripeCustomerIds = nil
		}
	}
	return c
}

// --- rapid plumbing -----------------------------------------------------------

// defaultRapidChecks lowers rapid's default number of cases to n for this
// test, unless -rapid.checks or RAPID_CHECKS asks for a number.
func defaultRapidChecks(t *testing.T, n int) {
	t.Helper()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if _, env := os.LookupEnv("RAPID_CHECKS"); set || env {
		return
	}
	f := flag.Lookup("rapid.checks")
	if f == nil {
		t.Fatal("rapid registers no -rapid.checks flag")
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

// rapidTB lets testkit's helpers run inside one rapid case: failures,
// cleanups and temporary directories belong to the case (so each case's
// broker and database are gone before the next), the rest to the test.
type rapidTB struct {
	testing.TB
	rt *rapid.T
}

func (r rapidTB) Helper()                      {}
func (r rapidTB) Cleanup(f func())             { r.rt.Cleanup(f) }
func (r rapidTB) Context() context.Context     { return r.rt.Context() }
func (r rapidTB) Log(args ...any)              { r.rt.Log(args...) }
func (r rapidTB) Logf(f string, args ...any)   { r.rt.Logf(f, args...) }
func (r rapidTB) Error(args ...any)            { r.rt.Error(args...) }
func (r rapidTB) Errorf(f string, args ...any) { r.rt.Errorf(f, args...) }
func (r rapidTB) Fatal(args ...any)            { r.rt.Fatal(args...) }
func (r rapidTB) Fatalf(f string, args ...any) { r.rt.Fatalf(f, args...) }
func (r rapidTB) Fail()                        { r.rt.Fail() }
func (r rapidTB) FailNow()                     { r.rt.FailNow() }
func (r rapidTB) Failed() bool                 { return r.rt.Failed() }

func (r rapidTB) TempDir() string {
	dir, err := os.MkdirTemp("", "identity-prop-")
	if err != nil {
		r.rt.Fatal(err)
	}
	r.rt.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
