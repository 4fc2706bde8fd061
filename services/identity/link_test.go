package identity_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/opscmd"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/identity"
)

// TestOperatorLinksAGuestPayment: a guest payment's dispute founds a
// record of its own, linked to no one, even though its payer typed Ada's
// email. The operator's signed link command merges it into Ada: the charge
// now resolves to her, one customer.upserted announces the merge, and
// repeating the command changes nothing. Unsigned commands, a record with
// a Stripe customer and unknown records are refused with their codes.
func TestOperatorLinksAGuestPayment(t *testing.T) {
	b := testkit.NATS(t)
	nc, js := b.Connect(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
	if err := emu.PutCharge(map[string]any{"id": "ch_LinkGuest1", "object": "charge", "customer": nil, "invoice": nil,
		"payment_intent": "pi_LinkGuest1", "billing_details": map[string]any{"email": "ada@example.com"},
		"amount": 4900, "currency": "usd", "livemode": false, "status": "succeeded"}); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(emu)
	defer api.Close()
	pub, key, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL,
		"SWITCHYARD_REPLAY_KEYS": hex.EncodeToString(pub)})

	const ada, bob = "cus_LinkAda", "cus_LinkBob"
	h.deliver(t, edited(t, "customer.created", "evt_linkAda0001", func(o map[string]any) {
		o["id"], o["email"], o["name"] = ada, "ada@example.com", "Ada"
	}))
	h.deliver(t, edited(t, "customer.created", "evt_linkBob0001", func(o map[string]any) { o["id"] = bob }))
	h.deliver(t, edited(t, "charge.dispute.created", "evt_linkGuestDispute", func(o map[string]any) {
		o["id"], o["charge"], o["payment_intent"] = "dp_LinkGuest1", "ch_LinkGuest1", "pi_LinkGuest1"
	}))
	waitSettled(t, js, 3)
	pool := openPool(t, h.dbURL)
	guest := identity.CanonicalID(identity.Identifier{Kind: identity.LinkCharge, Value: "ch_LinkGuest1"})
	if owner := linkOwner(t, pool, identity.LinkCharge, "ch_LinkGuest1"); owner != guest {
		t.Fatalf("the guest charge belongs to %q, want its own record %s", owner, guest)
	}

	ctx := context.Background()
	link := opscmd.Link{RequestID: "req-1", GuestID: guest, CustomerID: canonicalOf(ada), Actor: "ops"}
	refused := func(name string, key ed25519.PrivateKey, l opscmd.Link, code string) {
		t.Helper()
		_, err := opscmd.SendLink(ctx, nc, key, l)
		var r *opscmd.Refused
		if !errors.As(err, &r) || r.Code != code {
			t.Errorf("%s: %v, want refused with %s", name, err, code)
		}
	}
	refused("unsigned", nil, link, opscmd.CodeUnverified)
	refused("signed by another key", otherKey, link, opscmd.CodeUnverified)
	refused("a Stripe customer's record", key, opscmd.Link{RequestID: "req-2", GuestID: canonicalOf(bob), CustomerID: canonicalOf(ada)}, opscmd.CodeNotUnlinked)
	refused("unknown record", key, opscmd.Link{RequestID: "req-3", GuestID: "cus_nobody", CustomerID: canonicalOf(ada)}, opscmd.CodeNotFound)
	refused("no request id", key, opscmd.Link{RequestID: "x\x00", GuestID: guest, CustomerID: canonicalOf(ada)}, opscmd.CodeInvalid)
	if owner := linkOwner(t, pool, identity.LinkCharge, "ch_LinkGuest1"); owner != guest {
		t.Fatalf("a refused command moved the guest charge to %q", owner)
	}

	r, err := opscmd.SendLink(ctx, nc, key, link)
	if err != nil || r.CustomerID != canonicalOf(ada) || r.Already {
		t.Fatalf("link: %+v %v, want linked to %s", r, err, canonicalOf(ada))
	}
	again, err := opscmd.SendLink(ctx, nc, key, opscmd.Link{RequestID: "req-4", GuestID: guest, CustomerID: canonicalOf(ada)})
	if err != nil || !again.Already || again.CustomerID != canonicalOf(ada) {
		t.Fatalf("repeated link: %+v %v, want already linked", again, err)
	}
	for _, kind := range []struct{ kind, value string }{{identity.LinkCharge, "ch_LinkGuest1"}, {identity.LinkPaymentIntent, "pi_LinkGuest1"}} {
		if owner := linkOwner(t, pool, kind.kind, kind.value); owner != canonicalOf(ada) {
			t.Errorf("%s %s belongs to %q after the link, want Ada", kind.kind, kind.value, owner)
		}
	}
	var merges int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM customer_merges WHERE loser = $1 AND survivor = $2 AND event_id = 'operator-link:req-1'`,
		guest, canonicalOf(ada)).Scan(&merges); err != nil || merges != 1 {
		t.Errorf("%d merge records of the command (%v), want 1", merges, err)
	}
	// The guest charge's later refund is Ada's.
	h.deliver(t, edited(t, "charge.refunded", "evt_linkGuestRefund", func(o map[string]any) {
		o["id"], o["customer"], o["payment_intent"], o["invoice"] = "ch_LinkGuest1", nil, "pi_LinkGuest1", nil
	}))
	waitSettled(t, js, 5) // + the announcement and the refund
	announcements := 0
	for _, m := range billingMessages(t, js) {
		if u, ok := m.Event.(*billingv1.CustomerUpserted); ok && len(u.GetMergedCanonicalIds()) > 0 {
			announcements++
			if u.GetMeta().GetCanonicalCustomerId() != canonicalOf(ada) || u.GetMergedCanonicalIds()[0] != guest || u.GetEmail() != "ada@example.com" {
				t.Errorf("announcement %+v, want %s merged into Ada", u, guest)
			}
		}
		if m.Subject == subjects.BillingRefundIssued && m.Event.GetMeta().GetCanonicalCustomerId() != canonicalOf(ada) {
			t.Errorf("the guest charge's refund went to %s, want Ada", m.Event.GetMeta().GetCanonicalCustomerId())
		}
	}
	if announcements != 1 {
		t.Errorf("%d merge announcements, want 1 (the repeat is the same message)", announcements)
	}
	if n := streamCount(t, js, natsbus.StreamDLQ); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}
