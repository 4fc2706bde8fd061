package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/identity"
)

// edited is a fixture event with a new id, its data.object edited.
func edited(t testing.TB, fixture, id string, edit func(o map[string]any)) []byte {
	t.Helper()
	ev := fixtureEnvelope(t, fixture)
	ev["id"] = id
	edit(object(ev))
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func canonicalOf(cus string) string {
	return identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: cus})
}

// openPool opens the hub's database for assertions.
func openPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// profile is a live customer's email and name ("", "" if there is none).
func profile(t testing.TB, pool *pgxpool.Pool, canonical string) (email, name string) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT email, name FROM customers WHERE canonical_id = $1 AND merged_into IS NULL`, canonical).Scan(&email, &name)
	if err != nil {
		t.Fatalf("customer %s: %v", canonical, err)
	}
	return email, name
}

// linkOwner is the customer an identifier is linked to ("" if none).
func linkOwner(t testing.TB, pool *pgxpool.Pool, kind, value string) string {
	t.Helper()
	var owner string
	err := pool.QueryRow(context.Background(), `SELECT canonical_id FROM customer_links WHERE kind = $1 AND value = $2`, kind, value).Scan(&owner)
	if err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return owner
}

// stripeStreamData is the data of every message in the STRIPE stream.
func stripeStreamData(t testing.TB, js jetstream.JetStream) [][]byte {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Data)
	}
	return out
}

// TestHostileCustomerTextIsNormalisedNotDeadLettered: a customer's name
// holding a NUL (which PostgreSQL refuses: it dead-lettered
// customer.created, so one character blocked a customer) and invalid
// UTF-8, a 20,000-character name, and an email with a space (which crm
// and support would refuse as a key) are normalised where identity reads
// them: each Stripe customer is one canonical customer, upserted with the
// normalised name, nothing is dead-lettered, and the STRIPE stream keeps
// the event as Stripe sent it.
func TestHostileCustomerTextIsNormalisedNotDeadLettered(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	h := startIdentity(t, b.URL, js, map[string]string{"CONSUMER_MAX_ATTEMPTS": "2", "CONSUMER_BACKOFF": "50ms"})

	created := func(id, cus, email, name string) []byte {
		return edited(t, "customer.created", id, func(o map[string]any) {
			o["id"], o["email"], o["name"] = cus, email, name
		})
	}
	// encoding/json writes a NUL as \u0000 and would replace invalid UTF-8:
	// the invalid bytes go in raw, as a sender could put them.
	nul := bytes.Replace(created("evt_hostileNul001", "cus_HostileNul", "ada@example.com", "Ada\x00 Lovelace INVALID"),
		[]byte("INVALID"), []byte{0xff, 0xfe, 'x'}, 1)
	if !bytes.Contains(nul, []byte(`\u0000`)) || bytes.Contains(nul, []byte("INVALID")) {
		t.Fatalf("the event does not hold a NUL and invalid UTF-8: %s", nul)
	}
	events := []struct {
		cus       string
		raw       []byte
		wantEmail string
		wantName  string
	}{
		{"cus_HostileNul", nul, "ada@example.com", "Ada Lovelace \uFFFD\uFFFDx"},
		{"cus_HostileLong", created("evt_hostileLong01", "cus_HostileLong", "long@example.com", strings.Repeat("n", 20000)),
			"long@example.com", strings.Repeat("n", 255) + "…"},
		{"cus_HostileSpace", created("evt_hostileSpace1", "cus_HostileSpace", "ada lovelace@example.com", "Ada"), "", "Ada"},
	}
	for _, e := range events {
		h.deliver(t, e.raw)
	}
	waitSettled(t, js, 0) // every event acked: handled, or dead-lettered

	if n := streamCount(t, js, natsbus.StreamDLQ); n != 0 {
		for _, d := range identityDeadLetters(t, js) {
			t.Logf("dead letter: %s", d.Reason)
		}
		t.Fatalf("%d dead letters, want none", n)
	}
	pool := openPool(t, h.dbURL)
	upserts := map[string]*billingv1.CustomerUpserted{}
	for _, m := range billingMessages(t, js) {
		if u, ok := m.Event.(*billingv1.CustomerUpserted); ok {
			upserts[u.GetMeta().GetStripeCustomerId()] = u
		}
	}
	var live int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM customers WHERE merged_into IS NULL`).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != len(events) {
		t.Errorf("%d canonical customers, want %d (one per Stripe customer)", live, len(events))
	}
	for _, e := range events {
		canonical := canonicalOf(e.cus)
		if owner := linkOwner(t, pool, identity.LinkStripeCustomer, e.cus); owner != canonical {
			t.Errorf("%s is linked to %q, want %s", e.cus, owner, canonical)
		}
		email, name := profile(t, pool, canonical)
		if email != e.wantEmail || name != e.wantName {
			t.Errorf("%s profile: email %q, name %q (%d runes); want %q, %q", e.cus, email, name, len([]rune(name)), e.wantEmail, e.wantName)
		}
		u := upserts[e.cus]
		switch {
		case u == nil:
			t.Errorf("no billing.customer.upserted for %s", e.cus)
		case u.GetName() != e.wantName || u.GetEmail() != e.wantEmail || u.GetMeta().GetEmail() != e.wantEmail ||
			u.GetMeta().GetUnverifiedEmail() != "" || u.GetMeta().GetCanonicalCustomerId() != canonical:
			t.Errorf("%s upserted: name %q, email %q, meta email %q, unverified %q, customer %s; want name %q, email %q, customer %s",
				e.cus, u.GetName(), u.GetEmail(), u.GetMeta().GetEmail(), u.GetMeta().GetUnverifiedEmail(), u.GetMeta().GetCanonicalCustomerId(),
				e.wantName, e.wantEmail, canonical)
		}
	}
	if owner := linkOwner(t, pool, identity.LinkEmail, "ada lovelace@example.com"); owner != "" {
		t.Errorf("the invalid email links customer %s", owner)
	}
	stored := stripeStreamData(t, js)
	if len(stored) != len(events) {
		t.Fatalf("%d Stripe events stored, want %d", len(stored), len(events))
	}
	for i, e := range events {
		if !bytes.Equal(stored[i], e.raw) {
			t.Errorf("the STRIPE stream holds %s's event changed", e.cus)
		}
	}
}

// TestUnverifiedEmailsNeverBecomeIdentity: emails typed by whoever pays —
// a charge's billing email, a guest checkout's, an invoice's frozen copy —
// never become a customer's profile email (the CRM key, the support
// requester), never link, and never join a payment to another customer.
// They ride along as unverified_email. A guest charge's dispute whose
// billing email is an existing customer's founds a customer of its own.
func TestUnverifiedEmailsNeverBecomeIdentity(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
	// A guest payment: no customer, no invoice; whoever paid typed Ada's email.
	if err := emu.PutCharge(map[string]any{"id": "ch_TrustGuest1", "object": "charge", "customer": nil, "invoice": nil,
		"payment_intent": "pi_TrustGuest1", "billing_details": map[string]any{"email": "Ada@Example.com"},
		"amount": 4900, "currency": "usd", "livemode": false, "status": "succeeded"}); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(emu)
	defer api.Close()
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL})

	const ada, bob, mallory = "cus_TrustAda", "cus_TrustBob", "mallory@evil.example"
	// Ada has her email on her Customer object; Bob has none yet.
	h.deliver(t, edited(t, "customer.created", "evt_trustAda0001", func(o map[string]any) {
		o["id"], o["email"], o["name"] = ada, "ada@example.com", "Ada"
	}))
	h.deliver(t, edited(t, "customer.created", "evt_trustBob0001", func(o map[string]any) { o["id"] = bob }))
	waitSettled(t, js, 2)

	// A refund of Bob's charge, whose card form said Mallory's email.
	h.deliver(t, edited(t, "charge.refunded", "evt_trustBobRefund", func(o map[string]any) {
		o["id"], o["customer"], o["payment_intent"] = "ch_TrustBob1", bob, "pi_TrustBob1"
		o["billing_details"].(map[string]any)["email"] = mallory
	}))
	// Bob's invoice, its customer_email a copy that does not match.
	h.deliver(t, edited(t, "invoice.paid", "evt_trustBobInvoice", func(o map[string]any) {
		o["id"], o["customer"], o["customer_email"] = "in_TrustBob2", bob, mallory
		o["charge"], o["payment_intent"], o["subscription"] = "ch_TrustBob2", "pi_TrustBob2", nil
	}))
	// Bob's checkout, Mallory's email typed in it.
	h.deliver(t, edited(t, "checkout.session.completed", "evt_trustBobCheckout", func(o map[string]any) {
		o["id"], o["customer"], o["payment_intent"] = "cs_test_TrustBob3", bob, "pi_TrustBob3"
		o["customer_details"].(map[string]any)["email"] = mallory
	}))
	// A dispute of the guest charge, named by id only: identity asks Stripe.
	h.deliver(t, edited(t, "charge.dispute.created", "evt_trustGuestDispute", func(o map[string]any) {
		o["id"], o["charge"], o["payment_intent"] = "dp_TrustGuest1", "ch_TrustGuest1", "pi_TrustGuest1"
	}))
	// A guest checkout with Ada's email typed in it.
	h.deliver(t, edited(t, "checkout.session.completed", "evt_trustGuestCheckout", func(o map[string]any) {
		o["id"], o["customer"], o["payment_intent"] = "cs_test_TrustGuest2", nil, "pi_TrustGuest2"
		o["customer_details"].(map[string]any)["email"] = "ada@example.com"
	}))
	waitSettled(t, js, 6) // + refund, payment, Bob's upsert, dispute; nothing for the guest checkout

	if n := streamCount(t, js, natsbus.StreamDLQ); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
	pool := openPool(t, h.dbURL)
	if email, _ := profile(t, pool, canonicalOf(ada)); email != "ada@example.com" {
		t.Errorf("Ada's profile email %q, want ada@example.com", email)
	}
	if email, _ := profile(t, pool, canonicalOf(bob)); email != "" {
		t.Errorf("Bob's profile email %q, want none: only his Customer object may give one", email)
	}
	if owner := linkOwner(t, pool, identity.LinkEmail, mallory); owner != "" {
		t.Errorf("the typed email %s is linked to %s", mallory, owner)
	}
	if owner := linkOwner(t, pool, identity.LinkEmail, "ada@example.com"); owner != canonicalOf(ada) {
		t.Errorf("Ada's email is linked to %q, want Ada (%s)", owner, canonicalOf(ada))
	}
	guest := identity.CanonicalID(identity.Identifier{Kind: identity.LinkCharge, Value: "ch_TrustGuest1"})
	if owner := linkOwner(t, pool, identity.LinkCharge, "ch_TrustGuest1"); owner != guest {
		t.Errorf("the guest charge is linked to %q, want a customer of its own (%s), never Ada's (%s)", owner, guest, canonicalOf(ada))
	}
	if owner := linkOwner(t, pool, identity.LinkPaymentIntent, "pi_TrustGuest2"); owner != "" {
		t.Errorf("the guest checkout's payment intent is linked to %s", owner)
	}
	var merges int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM customer_merges`).Scan(&merges); err != nil || merges != 0 {
		t.Errorf("%d merges (%v), want none", merges, err)
	}

	type want struct{ customer, email, unverified string }
	wants := map[string]want{
		subjects.BillingRefundIssued:     {canonicalOf(bob), "", mallory},
		subjects.BillingPaymentSucceeded: {canonicalOf(bob), "", mallory},
		subjects.BillingDisputeOpened:    {guest, "", "ada@example.com"},
	}
	got := map[string]int{}
	for _, m := range billingMessages(t, js) {
		meta := m.Event.GetMeta()
		if u, ok := m.Event.(*billingv1.CustomerUpserted); ok {
			if u.GetEmail() != meta.GetEmail() {
				t.Errorf("%s: email %q, meta email %q", m.MsgID, u.GetEmail(), meta.GetEmail())
			}
			if meta.GetStripeCustomerId() == bob && len(meta.GetSourceEventIds()) == 1 && meta.GetSourceEventIds()[0] == "evt_trustBobCheckout" {
				wants[m.MsgID] = want{canonicalOf(bob), "", mallory}
			} else {
				continue // the customers' own upserts
			}
		}
		w, ok := wants[m.MsgID]
		if !ok {
			w, ok = wants[m.Subject]
		}
		if !ok {
			t.Errorf("unexpected %s", m.MsgID)
			continue
		}
		got[m.Subject]++
		if meta.GetCanonicalCustomerId() != w.customer || meta.GetEmail() != w.email || meta.GetUnverifiedEmail() != w.unverified {
			t.Errorf("%s: customer %s, email %q, unverified %q; want %s, %q, %q", m.MsgID, meta.GetCanonicalCustomerId(),
				meta.GetEmail(), meta.GetUnverifiedEmail(), w.customer, w.email, w.unverified)
		}
	}
	for _, s := range []string{subjects.BillingRefundIssued, subjects.BillingPaymentSucceeded, subjects.BillingDisputeOpened, subjects.BillingCustomerUpserted} {
		if got[s] != 1 {
			t.Errorf("%d %s checked, want 1", got[s], s)
		}
	}
}
