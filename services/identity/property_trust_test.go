package identity_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"pgregory.net/rapid"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/services/identity"
)

// TestNonCustomerEventsNeverChangeIdentity is the property behind "only
// verified sources set identity": one to three Stripe customers, each with
// its customer.created and up to two customer.updated (the only events
// that may say a customer's email), and random events about everything
// else — invoices, charges (refunded), disputes, payment intents, refunds,
// checkout sessions, of those customers and of guest payments that belong
// to no customer — each carrying arbitrary emails where Stripe has a
// typed or copied one (billing_details.email, receipt_email,
// customer_details.email, customer_email): the customers' own emails
// (also in other letter cases), strangers', invalid ones. Delivered
// shuffled, some twice, to identity with the Stripe API (an emulator that
// knows every charge), they must leave:
//
//   - each customer's profile email what its newest customer event says;
//   - no email linked but one a customer event carried, to that customer;
//   - no two customers joined: no merge, each object linked to its own
//     customer, each guest payment to a customer of its own (none of the
//     others', whatever email it carries);
//   - no billing message whose email (or upserted email) is not one of its
//     customer's own customer events' emails.
//
// Each case costs a broker and a database: 10 cases by default
// (-rapid.checks or RAPID_CHECKS overrides it).
func TestNonCustomerEventsNeverChangeIdentity(t *testing.T) {
	defaultRapidChecks(t, 10)
	rapid.Check(t, func(rt *rapid.T) {
		tb := rapidTB{TB: t, rt: rt}
		emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
		g := genTrust(rt, tb, emu)
		api := httptest.NewServer(emu)
		rt.Cleanup(api.Close)
		run := newDirectRunWith(tb, identity.NewStripeReader("rk_test_identity", api.URL, &http.Client{Timeout: 10 * time.Second}))

		var labels []string
		byLabel := map[string]stripeEvent{}
		for _, e := range g.events {
			label := e.ID + " " + e.Type
			byLabel[label] = e
			for range rapid.IntRange(1, 2).Draw(rt, "copies of "+e.ID) {
				labels = append(labels, label)
			}
		}
		var delivery []stripeEvent
		for _, label := range rapid.Permutation(labels).Draw(rt, "delivery order") {
			delivery = append(delivery, byLabel[label])
		}
		run.handleAll(tb, delivery)
		g.check(tb, run)
	})
}

// trustCustomer is one generated Stripe customer.
type trustCustomer struct {
	cus    string
	emails []string // every email its customer events carried
	newest string   // the email its newest customer event carries ("" = none)
	owns   []identity.Identifier
}

type trustGen struct {
	tb        testing.TB
	events    []stripeEvent
	customers []*trustCustomer
	guests    [][]identity.Identifier // each guest payment's charge and payment intent
	seq       int
	clock     int64
}

// Emails a customer event may carry, and what else a non-customer event
// may: strangers', the customers' in other cases, invalid ones, none.
var (
	trustCustomerEmails = []string{"ada@example.com", "bob@example.com", "cy@example.com"}
	trustAnyEmails      = append(slices.Clone(trustCustomerEmails),
		"mallory@evil.example", "Ada@Example.COM", " bob@example.com ", "eve@example.com", "not an email@example.com", "")
)

func genTrust(rt *rapid.T, tb testing.TB, emu *stripeapi.Server) *trustGen {
	g := &trustGen{tb: tb, clock: lifeStart}
	anyEmail := rapid.SampledFrom(trustAnyEmails)
	gap := rapid.SampledFrom([]int64{0, 1, 60, day})
	putCharge := func(ch map[string]any) {
		ch["object"], ch["amount"], ch["currency"], ch["livemode"], ch["status"] = "charge", 4900, "usd", false, "succeeded"
		if err := emu.PutCharge(ch); err != nil {
			tb.Fatal(err)
		}
	}
	for k := range rapid.IntRange(1, 3).Draw(rt, "customers") {
		c := &trustCustomer{cus: fmt.Sprintf("cus_Trust%d", k)}
		g.customers = append(g.customers, c)
		name := fmt.Sprintf("Customer %d", k)
		// Customer events: strictly newer one after the other, so the newest
		// is the one whose email must stand.
		email := rapid.SampledFrom(append([]string{""}, trustCustomerEmails...)).Draw(rt, "created with email")
		g.customerEvent("customer.created", c, email, name, 1)
		for range rapid.IntRange(0, 2).Draw(rt, "customer updates") {
			g.customerEvent("customer.updated.email-set", c, rapid.SampledFrom(trustCustomerEmails).Draw(rt, "new email"), name, 1+gap.Draw(rt, "gap"))
		}

		for j := range rapid.IntRange(0, 2).Draw(rt, "invoices") {
			in, ch, pi := fmt.Sprintf("in_Trust%d_%d", k, j), fmt.Sprintf("ch_Trust%d_%d", k, j), fmt.Sprintf("pi_Trust%d_%d", k, j)
			c.owns = append(c.owns, identity.Identifier{Kind: identity.LinkInvoice, Value: in},
				identity.Identifier{Kind: identity.LinkCharge, Value: ch}, identity.Identifier{Kind: identity.LinkPaymentIntent, Value: pi})
			putCharge(map[string]any{"id": ch, "customer": c.cus, "invoice": in, "payment_intent": pi,
				"billing_details": map[string]any{"email": anyEmail.Draw(rt, "charge's billing email")}})
			g.emit(rapid.SampledFrom([]string{"invoice.paid", "invoice.payment_failed"}).Draw(rt, "invoice event"), gap.Draw(rt, "gap"), func(o map[string]any) {
				o["id"], o["customer"], o["customer_email"] = in, c.cus, nullable(anyEmail.Draw(rt, "invoice's customer_email"))
				o["charge"], o["payment_intent"], o["subscription"] = ch, pi, nil
			})
			for range rapid.IntRange(0, 3).Draw(rt, "events about the charge") {
				switch rapid.SampledFrom([]string{"refunded", "dispute", "payment intent", "refund object"}).Draw(rt, "charge event") {
				case "refunded":
					// The charge names its customer, or only its invoice (then
					// identity knows the invoice, or asks Stripe).
					customer := any(nil)
					if rapid.Bool().Draw(rt, "the refunded charge names its customer") {
						customer = c.cus
					}
					g.refunded(gap.Draw(rt, "gap"), ch, customer, in, pi, anyEmail.Draw(rt, "billing email"), anyEmail.Draw(rt, "receipt email"))
				case "dispute":
					g.dispute(gap.Draw(rt, "gap"), ch, pi)
				case "payment intent":
					g.paymentIntent(gap.Draw(rt, "gap"), pi, c.cus, ch, anyEmail.Draw(rt, "receipt email"))
				case "refund object":
					g.refundObject(gap.Draw(rt, "gap"), ch, c.cus, pi, anyEmail.Draw(rt, "billing email"))
				}
			}
		}
		for j := range rapid.IntRange(0, 1).Draw(rt, "checkouts") {
			pi := fmt.Sprintf("pi_Trust%d_co%d", k, j)
			c.owns = append(c.owns, identity.Identifier{Kind: identity.LinkPaymentIntent, Value: pi})
			g.checkout(gap.Draw(rt, "gap"), fmt.Sprintf("cs_test_Trust%d_%d", k, j), c.cus, pi, anyEmail.Draw(rt, "checkout email"), anyEmail.Draw(rt, "checkout customer_email"))
		}
	}
	// Guest payments: no Stripe customer, no invoice; whoever paid typed an
	// email, maybe a customer's.
	for j := range rapid.IntRange(0, 2).Draw(rt, "guest payments") {
		ch, pi := fmt.Sprintf("ch_TrustGuest%d", j), fmt.Sprintf("pi_TrustGuest%d", j)
		g.guests = append(g.guests, []identity.Identifier{{Kind: identity.LinkCharge, Value: ch}, {Kind: identity.LinkPaymentIntent, Value: pi}})
		putCharge(map[string]any{"id": ch, "customer": nil, "invoice": nil, "payment_intent": pi,
			"billing_details": map[string]any{"email": anyEmail.Draw(rt, "guest's billing email")}})
		for range rapid.IntRange(1, 4).Draw(rt, "events about the guest payment") {
			switch rapid.SampledFrom([]string{"refunded", "dispute", "payment intent", "refund object", "checkout"}).Draw(rt, "guest event") {
			case "refunded":
				g.refunded(gap.Draw(rt, "gap"), ch, nil, nil, pi, anyEmail.Draw(rt, "billing email"), anyEmail.Draw(rt, "receipt email"))
			case "dispute":
				g.dispute(gap.Draw(rt, "gap"), ch, pi)
			case "payment intent":
				g.paymentIntent(gap.Draw(rt, "gap"), pi, nil, ch, anyEmail.Draw(rt, "receipt email"))
			case "refund object":
				g.refundObject(gap.Draw(rt, "gap"), ch, nil, pi, anyEmail.Draw(rt, "billing email"))
			case "checkout":
				g.checkout(gap.Draw(rt, "gap"), fmt.Sprintf("cs_test_TrustGuest%d", j), nil, pi, anyEmail.Draw(rt, "checkout email"), anyEmail.Draw(rt, "checkout customer_email"))
			}
		}
	}
	return g
}

// emit appends an event made from fixture, gap seconds after the previous
// one; edit fills data.object.
func (g *trustGen) emit(fixture string, gap int64, edit func(o map[string]any)) {
	g.tb.Helper()
	ev := fixtureEnvelope(g.tb, fixture)
	g.seq++
	g.clock += gap
	id := fmt.Sprintf("evt_trust%04d", g.seq)
	ev["id"], ev["created"] = id, g.clock
	delete(ev["data"].(map[string]any), "previous_attributes")
	edit(object(ev))
	g.add(ev)
}

// emitObject appends an event of type typ whose data.object is obj.
func (g *trustGen) emitObject(typ string, gap int64, obj map[string]any) {
	g.tb.Helper()
	ev := fixtureEnvelope(g.tb, "charge.refunded")
	g.seq++
	g.clock += gap
	ev["id"], ev["type"], ev["created"] = fmt.Sprintf("evt_trust%04d", g.seq), typ, g.clock
	ev["data"] = map[string]any{"object": obj}
	g.add(ev)
}

func (g *trustGen) add(ev map[string]any) {
	g.tb.Helper()
	raw, err := json.Marshal(ev)
	if err != nil {
		g.tb.Fatal(err)
	}
	created, _ := ev["created"].(int64)
	g.events = append(g.events, stripeEvent{ID: ev["id"].(string), Type: ev["type"].(string), Created: created, Raw: raw})
}

func (g *trustGen) customerEvent(fixture string, c *trustCustomer, email, name string, gap int64) {
	g.emit(fixture, gap, func(o map[string]any) {
		o["id"], o["email"], o["name"] = c.cus, nullable(email), name
	})
	if email != "" {
		c.emails = append(c.emails, email)
	}
	c.newest = email
}

func (g *trustGen) refunded(gap int64, ch string, customer, invoice any, pi, billing, receipt string) {
	g.emit("charge.refunded", gap, func(o map[string]any) {
		o["id"], o["customer"], o["invoice"], o["payment_intent"] = ch, customer, invoice, pi
		o["billing_details"].(map[string]any)["email"] = nullable(billing)
		o["receipt_email"] = nullable(receipt)
		o["receipt_url"] = strings.ReplaceAll(o["receipt_url"].(string), fixtureCharge, ch)
	})
}

func (g *trustGen) dispute(gap int64, ch, pi string) {
	g.emit("charge.dispute.created", gap, func(o map[string]any) {
		o["id"] = "dp_" + strings.TrimPrefix(ch, "ch_")
		o["charge"], o["payment_intent"] = ch, pi
	})
}

func (g *trustGen) paymentIntent(gap int64, pi string, customer any, ch, receipt string) {
	g.emitObject("payment_intent.succeeded", gap, map[string]any{
		"id": pi, "object": "payment_intent", "amount": 4900, "currency": "usd", "livemode": false, "status": "succeeded",
		"customer": customer, "latest_charge": ch, "receipt_email": nullable(receipt),
	})
}

func (g *trustGen) refundObject(gap int64, ch string, customer any, pi, billing string) {
	g.emitObject("charge.refund.updated", gap, map[string]any{
		"id": "re_" + strings.TrimPrefix(ch, "ch_"), "object": "refund", "amount": 100, "currency": "usd", "status": "succeeded",
		"payment_intent": pi,
		"charge": map[string]any{"id": ch, "object": "charge", "customer": customer, "payment_intent": pi,
			"billing_details": map[string]any{"email": nullable(billing)}},
	})
}

func (g *trustGen) checkout(gap int64, id string, customer any, pi, email, customerEmail string) {
	g.emit("checkout.session.completed", gap, func(o map[string]any) {
		o["id"], o["customer"], o["payment_intent"], o["customer_email"] = id, customer, pi, nullable(customerEmail)
		o["customer_details"].(map[string]any)["email"] = nullable(email)
	})
}

// check asserts the property on identity's tables and billing.> output.
func (g *trustGen) check(tb testing.TB, run *directRun) {
	tb.Helper()
	s := run.state(tb) // checks every Stripe customer holds its derived id, one each
	ctx := context.Background()
	ofStripe := map[string]*trustCustomer{} // canonical id → customer
	for _, c := range g.customers {
		canonical := canonicalOf(c.cus)
		ofStripe[canonical] = c
		p, ok := s.customers[canonical]
		if !ok {
			tb.Errorf("%s: no live customer %s", c.cus, canonical)
			continue
		}
		if p[0] != c.newest {
			tb.Errorf("%s: profile email %q, want %q (its newest customer event's; its customer events said %v)", c.cus, p[0], c.newest, c.emails)
		}
		for _, id := range c.owns {
			if owner, ok := s.links[id]; ok && owner != canonical {
				tb.Errorf("%s %s of %s is linked to %s", id.Kind, id.Value, c.cus, owner)
			}
		}
	}
	for id, owner := range s.links {
		if id.Kind != identity.LinkEmail {
			continue
		}
		if c := ofStripe[owner]; c == nil || !slices.Contains(c.emails, id.Value) {
			tb.Errorf("email %s is linked to %s, whose customer events never carried it", id.Value, owner)
		}
	}
	guestOwners := map[string]int{}
	for j, ids := range g.guests {
		for _, id := range ids {
			owner, ok := s.links[id]
			if !ok {
				continue // no event about it resolved through it
			}
			if ofStripe[owner] != nil {
				tb.Errorf("guest %s %s is linked to %s, a Stripe customer's", id.Kind, id.Value, owner)
			}
			if other, seen := guestOwners[owner]; seen && other != j {
				tb.Errorf("guest payments %d and %d are one customer %s", other, j, owner)
			}
			guestOwners[owner] = j
		}
	}
	var merges int
	if err := run.pool.QueryRow(ctx, `SELECT count(*) FROM customer_merges`).Scan(&merges); err != nil {
		tb.Fatal(err)
	}
	if merges != 0 {
		rows, _ := run.pool.Query(ctx, `SELECT loser || ' into ' || survivor || ' by ' || event_id FROM customer_merges`)
		got, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		tb.Errorf("customers were joined: %v", got)
	}
	for _, m := range run.billing(tb) {
		meta := m.Event.GetMeta()
		emails := []string{meta.GetEmail()}
		if u, ok := m.Event.(*billingv1.CustomerUpserted); ok {
			emails = append(emails, u.GetEmail())
		}
		c := ofStripe[meta.GetCanonicalCustomerId()]
		for _, e := range emails {
			if e != "" && (c == nil || !slices.Contains(c.emails, e)) {
				tb.Errorf("%s for %s carries email %q, which no customer event of its customer carried", m.MsgID, meta.GetCanonicalCustomerId(), e)
			}
		}
	}
}
