package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/identity"
)

func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }

// hub runs the identity service through identity.Run on a broker.
type hub struct {
	js    jetstream.JetStream
	addr  string
	dbURL string
}

func startIdentity(t *testing.T, natsURL string, js jetstream.JetStream, extra map[string]string) *hub {
	t.Helper()
	addr := freeAddr(t)
	dbURL := testkit.Postgres(t)
	vars := map[string]string{
		"IDENTITY_ADDR": addr, "NATS_URL": natsURL, "DATABASE_URL": dbURL, "LOG_LEVEL": "warn",
	}
	for k, v := range extra {
		vars[k] = v
	}
	env := config.MapEnv(vars)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- identity.Run(ctx, env, &logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("identity.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("identity did not stop")
		}
	})
	testkit.WaitFor(t, 20*time.Second, "identity ready", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("identity exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return &hub{js: js, addr: addr, dbURL: dbURL}
}

// deliver stores a Stripe event the way the gateway does.
func (h *hub) deliver(t *testing.T, raw []byte) {
	t.Helper()
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: wire.StripeEventSubject(ev.Type), Data: raw, Header: nats.Header{wire.HeaderMsgID: {ev.ID}}}
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// billing returns the billing.> messages stored so far: subject → message ids.
func (h *hub) billing(t *testing.T) map[string][]string {
	t.Helper()
	s, err := h.js.Stream(context.Background(), natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		decoded, err := subjects.Decode(m.Subject, m.Data)
		if err != nil {
			t.Fatalf("%s: %v", m.Subject, err)
		}
		ev, ok := decoded.(subjects.BillingEvent)
		if !ok {
			t.Fatalf("%s is not a billing event", m.Subject)
		}
		if ev.GetMeta().GetEventId() != m.Header.Get(wire.HeaderMsgID) {
			t.Errorf("%s: meta.event_id %s != Nats-Msg-Id %s", m.Subject, ev.GetMeta().GetEventId(), m.Header.Get(wire.HeaderMsgID))
		}
		if ev.GetMeta().GetCanonicalCustomerId() == "" {
			t.Errorf("%s carries no canonical customer id", m.Subject)
		}
		out[m.Subject] = append(out[m.Subject], ev.GetMeta().GetCanonicalCustomerId())
	}
	return out
}

// TestFixturesFlowToBillingEvents runs the real fixtures through the
// service: each yields its domain event with one canonical customer. The
// dispute names only a charge no earlier event linked, so identity asks
// the Stripe API (the emulator) whose charge it is.
func TestFixturesFlowToBillingEvents(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	stripe := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
	if err := stripe.PutCharge(map[string]any{"id": "ch_1NzlYeGgdF1VjufLh34inorG", "object": "charge", "customer": "cus_OnMHOpJU2HN6Xv",
		"amount": 100, "currency": "usd", "livemode": false, "status": "succeeded"}); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(stripe)
	defer api.Close()
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL})
	for _, name := range []string{"customer.created", "customer.updated.email-set", "customer.subscription.created", "invoice.paid", "invoice.payment_failed", "charge.dispute.created"} {
		h.deliver(t, testkit.StripeEvent(t, name))
	}
	want := []string{subjects.BillingCustomerUpserted, subjects.BillingSubscriptionStarted, subjects.BillingPaymentSucceeded, subjects.BillingPaymentFailed, subjects.BillingDisputeOpened}
	var got map[string][]string
	testkit.WaitFor(t, 20*time.Second, "domain events", func() bool {
		got = h.billing(t)
		for _, s := range want {
			if len(got[s]) == 0 {
				return false
			}
		}
		return true
	})
	canon := map[string]bool{}
	var subs []string
	for s, cids := range got {
		subs = append(subs, s)
		for _, c := range cids {
			canon[c] = true
		}
	}
	sort.Strings(subs)
	if len(canon) != 1 {
		t.Errorf("events carry %d canonical ids (%v), want 1: every fixture belongs to cus_OnMHOpJU2HN6Xv", len(canon), canon)
	}
	t.Logf("subjects: %v", subs)
}

// TestSameSecondTieRefetchesFromStripe: two updates of one subscription in
// the same second; identity asks the Stripe API which state is current.
func TestSameSecondTieRefetchesFromStripe(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
	var subscriptionReads atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/subscriptions/") {
			subscriptionReads.Add(1)
		}
		emu.ServeHTTP(w, r)
	}))
	defer api.Close()
	base := testkit.StripeEvent(t, "customer.subscription.updated")
	var sub struct {
		Data struct {
			Object map[string]any `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(base, &sub); err != nil {
		t.Fatal(err)
	}
	current := sub.Data.Object
	current["status"] = "active"
	if err := emu.PutSubscription(current); err != nil {
		t.Fatal(err)
	}
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL, "IDENTITY_WORKERS": "1"})

	variant := func(id, status string) []byte {
		raw := bytes.Replace(base, []byte(`"evt_1O5Nv5GgdF1VjufLza9UqNwQ"`), []byte(`"`+id+`"`), 1)
		return bytes.Replace(raw, []byte(`"status": "active"`), []byte(`"status": "`+status+`"`), 1)
	}
	// past_due outranks active by status precedence; Stripe says active.
	h.deliver(t, variant("evt_tieActive0001", "active"))
	h.deliver(t, variant("evt_tiePastDue001", "past_due"))

	pool, err := pgxpool.New(context.Background(), h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	subID, _ := current["id"].(string)
	testkit.WaitFor(t, 20*time.Second, "both versions handled", func() bool {
		return subscriptionReads.Load() >= 1
	})
	testkit.WaitFor(t, 20*time.Second, "both events handled", func() bool {
		c, err := js.Consumer(context.Background(), natsbus.StreamStripe, identity.DefaultConsumerName)
		if err != nil {
			return false
		}
		i, err := c.Info(context.Background())
		return err == nil && i.Delivered.Stream >= 2 && i.NumPending == 0 && i.NumAckPending == 0
	})
	var status, eventID string
	if err := pool.QueryRow(context.Background(), `SELECT status, event_id FROM object_versions WHERE object_id = $1`, subID).Scan(&status, &eventID); err != nil {
		t.Fatal(err)
	}
	if status != "active" || eventID != "evt_tieActive0001" {
		t.Fatalf("applied version %s (%s), want Stripe's current: active from evt_tieActive0001", status, eventID)
	}
}

// TestCRMContactIsLinkedBack: crm's synced outcome puts the contact id on
// the canonical customer.
func TestCRMContactIsLinkedBack(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	h := startIdentity(t, b.URL, js, nil)
	h.deliver(t, testkit.StripeEvent(t, "customer.created"))
	var canonical string
	testkit.WaitFor(t, 20*time.Second, "customer upserted", func() bool {
		ids := h.billing(t)[subjects.BillingCustomerUpserted]
		if len(ids) > 0 {
			canonical = ids[0]
		}
		return canonical != ""
	})
	out := &crmv1.ContactSynced{EventId: "crm.contact.synced:x1", CanonicalCustomerId: canonical, ContactId: "10000000001", Provider: "hubspot"}
	data, _ := proto.Marshal(out)
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subjects.CRMContactSynced, Data: data,
		Header: nats.Header{wire.HeaderMsgID: {out.EventId}}}); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	testkit.WaitFor(t, 20*time.Second, "crm_contact link", func() bool {
		var owner string
		err := pool.QueryRow(context.Background(), `SELECT canonical_id FROM customer_links WHERE kind = 'crm_contact' AND value = 'hubspot:10000000001'`).Scan(&owner)
		return err == nil && owner == canonical
	})
}

// A CRM contact the CRM returns for a second customer while it is linked to
// the first is a conflict a person must settle: identity dead-letters the
// outcome at once as permanent, naming both customers and what to do, and
// the link stays with the first. (It was a warning in the log.)
func TestCRMContactOfAnotherCustomerIsAFailure(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	h := startIdentity(t, b.URL, js, nil)
	first := testkit.StripeEvent(t, "customer.created")
	second := bytes.ReplaceAll(bytes.ReplaceAll(first, []byte("evt_1O59vsGgdF1VjufLNnhVwvTi"), []byte("evt_1O59vsGgdF1VjufLNnhVwvT2")),
		[]byte("cus_OnMHOpJU2HN6Xv"), []byte("cus_OnMHOpJU2HN6X2"))
	h.deliver(t, first)
	h.deliver(t, second)
	var customers []string
	testkit.WaitFor(t, 20*time.Second, "two customers upserted", func() bool {
		customers = h.billing(t)[subjects.BillingCustomerUpserted]
		return len(customers) == 2 && customers[0] != customers[1]
	})
	for i, cid := range customers {
		out := &crmv1.ContactSynced{EventId: fmt.Sprintf("crm.contact.synced:c%d", i), CanonicalCustomerId: cid, SourceEventId: fmt.Sprintf("billing.customer.upserted:c%d", i),
			ContactId: "10000000001", Provider: "hubspot"}
		data, _ := proto.Marshal(out)
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subjects.CRMContactSynced, Data: data,
			Header: nats.Header{wire.HeaderMsgID: {out.EventId}}}); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // the first claim is linked before the second arrives
			testkit.WaitFor(t, 20*time.Second, "the first link", func() bool { return h.crmOwner(t, "hubspot:10000000001") == cid })
		}
	}
	var dl *consumer.DeadLetter
	testkit.WaitFor(t, 20*time.Second, "the conflict's dead letter", func() bool {
		for _, d := range deadLettersOf(t, js, identity.DefaultConsumerName+"_crm_links") {
			if d.OriginalSubject == subjects.CRMContactSynced {
				dl = d
			}
		}
		return dl != nil
	})
	if dl.Class != errclass.ClassPermanent || dl.Attempts != 1 || !strings.Contains(dl.Reason, "linked to customer "+customers[0]) ||
		!strings.Contains(dl.Reason, "returned it for customer "+customers[1]) {
		t.Fatalf("dead letter: class %s after %d attempts, reason %q; want permanent at once, naming both customers", dl.Class, dl.Attempts, dl.Reason)
	}
	if owner := h.crmOwner(t, "hubspot:10000000001"); owner != customers[0] {
		t.Fatalf("the contact moved to %s", owner)
	}
}

// Outcomes published together, handled a pull at a time: each contact goes
// to its customer, and of two customers the CRM returned one contact for,
// one keeps it and the other's outcome alone is dead-lettered.
func TestCRMOutcomesOfAPullAreLinked(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	h := startIdentity(t, b.URL, js, nil)
	created := testkit.StripeEvent(t, "customer.created")
	const n = 6
	for i := range n {
		h.deliver(t, bytes.ReplaceAll(bytes.ReplaceAll(created, []byte("evt_1O59vsGgdF1VjufLNnhVwvTi"), []byte(fmt.Sprintf("evt_1O59vsGgdF1VjufLNnhVwv%02d", i))),
			[]byte("cus_OnMHOpJU2HN6Xv"), []byte(fmt.Sprintf("cus_OnMHOpJU2HN6%02d", i))))
	}
	var customers []string
	testkit.WaitFor(t, 20*time.Second, "customers upserted", func() bool {
		customers = h.billing(t)[subjects.BillingCustomerUpserted]
		return len(customers) == n
	})
	if slices.Sort(customers); len(slices.Compact(slices.Clone(customers))) != n {
		t.Fatalf("customers %v: want %d distinct", customers, n)
	}
	publish := func(i int, cid, contact string) {
		t.Helper()
		out := &crmv1.ContactSynced{EventId: fmt.Sprintf("crm.contact.synced:p%d", i), CanonicalCustomerId: cid, SourceEventId: fmt.Sprintf("billing.customer.upserted:p%d", i),
			ContactId: contact, Provider: "hubspot"}
		data, _ := proto.Marshal(out)
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subjects.CRMContactSynced, Data: data,
			Header: nats.Header{wire.HeaderMsgID: {out.EventId}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, cid := range customers[:n-1] {
		publish(i, cid, fmt.Sprintf("2000000000%d", i))
	}
	publish(n-1, customers[n-1], "20000000000") // customers[0]'s contact
	testkit.WaitFor(t, 20*time.Second, "every contact linked", func() bool {
		for i := 1; i < n-1; i++ {
			if h.crmOwner(t, fmt.Sprintf("hubspot:2000000000%d", i)) != customers[i] {
				return false
			}
		}
		return h.crmOwner(t, "hubspot:20000000000") != ""
	})
	owner := h.crmOwner(t, "hubspot:20000000000")
	other := customers[0]
	if owner == other {
		other = customers[n-1]
	} else if owner != customers[n-1] {
		t.Fatalf("the shared contact went to %s, neither of its two customers", owner)
	}
	var dls []*consumer.DeadLetter
	testkit.WaitFor(t, 20*time.Second, "the conflict's dead letter", func() bool {
		dls = deadLettersOf(t, js, identity.DefaultConsumerName+"_crm_links")
		return len(dls) > 0
	})
	testkit.Never(t, time.Second, "a second dead letter", func() bool {
		return len(deadLettersOf(t, js, identity.DefaultConsumerName+"_crm_links")) > 1
	})
	if dl := dls[0]; dl.Class != errclass.ClassPermanent || !strings.Contains(dl.Reason, "linked to customer "+owner) || !strings.Contains(dl.Reason, "returned it for customer "+other) {
		t.Fatalf("dead letter: class %s, reason %q; want permanent, %s keeping the contact %s claimed", dl.Class, dl.Reason, owner, other)
	}
}

// crmOwner is the customer a CRM contact is linked to ("" if none).
func (h *hub) crmOwner(t *testing.T, contact string) string {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var owner string
	_ = pool.QueryRow(context.Background(), `SELECT canonical_id FROM customer_links WHERE kind = 'crm_contact' AND value = $1`, contact).Scan(&owner)
	return owner
}
