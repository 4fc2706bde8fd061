package identity_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// fixtureProduct is the product the subscription and invoice fixtures'
// price names, by id only, as webhooks do.
const fixtureProduct = "prod_OnMHDH6VBmYlTr"

// putProduct stores a product in Stripe's shape (API version 2023-10-16)
// in the emulator, the way the fixtures' charge is put.
func putProduct(t *testing.T, emu *stripeapi.Server, id, name string) {
	t.Helper()
	if err := emu.PutProduct(map[string]any{
		"id": id, "object": "product", "active": true, "created": 1696965932, "default_price": nil,
		"description": nil, "features": []any{}, "images": []any{}, "livemode": false, "metadata": map[string]any{},
		"name": name, "package_dimensions": nil, "shippable": nil, "statement_descriptor": nil, "tax_code": nil,
		"unit_label": nil, "updated": 1696965932, "url": nil,
	}); err != nil {
		t.Fatal(err)
	}
}

// emulatorProductName is the name the emulator holds for a product.
func emulatorProductName(t *testing.T, emu *stripeapi.Server, id string) string {
	t.Helper()
	raw, ok := emu.Object("product", id)
	if !ok {
		t.Fatalf("the emulator holds no product %s", id)
	}
	var p struct{ Name string }
	if err := json.Unmarshal(raw, &p); err != nil || p.Name == "" {
		t.Fatalf("product %s: %v, name %q", id, err, p.Name)
	}
	return p.Name
}

// subscriptionStartedFor is the customer.subscription.created fixture for
// a customer and subscription of its own (tag), its price naming product.
// It returns the event and the id of the billing.subscription.started
// message it yields.
func subscriptionStartedFor(t *testing.T, tag, product string) ([]byte, string) {
	t.Helper()
	raw := testkit.StripeEvent(t, "customer.subscription.created")
	for old, repl := range map[string]string{
		"evt_1O5EuiGgdF1VjufLZtb3fvOc": "evt_" + tag, "sub_1O00X8GgdF1VjufLsFtFRRh8": "sub_" + tag,
		"cus_OnMHOpJU2HN6Xv": "cus_" + tag, fixtureProduct: product,
	} {
		if !bytes.Contains(raw, []byte(old)) {
			t.Fatalf("the fixture no longer holds %s", old)
		}
		raw = bytes.ReplaceAll(raw, []byte(old), []byte(repl))
	}
	return raw, subjects.BillingSubscriptionStarted + ":evt_" + tag
}

// waitForMessages waits until every id in ids is in the BILLING stream and
// returns the messages stored by their Nats-Msg-Id.
func waitForMessages(t *testing.T, js jetstream.JetStream, ids ...string) map[string]proto.Message {
	t.Helper()
	var got map[string]proto.Message
	testkit.WaitFor(t, 20*time.Second, fmt.Sprintf("%d billing messages (%s, …)", len(ids), ids[0]), func() bool {
		got = map[string]proto.Message{}
		for _, m := range billingMessages(t, js) {
			got[m.MsgID] = m.Event
		}
		for _, id := range ids {
			if got[id] == nil {
				return false
			}
		}
		return true
	})
	return got
}

// TestPlanIsNamedByItsProduct: the webhook names the price's product by id
// only; identity reads the product's name from the Stripe API and the
// billing event's plan carries it — in a started subscription, and in both
// plans of an upgrade. Message ids stay those derived from the Stripe event.
func TestPlanIsNamedByItsProduct(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
	putProduct(t, emu, fixtureProduct, "Switchyard Pro")
	api := httptest.NewServer(emu)
	defer api.Close()
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL})
	h.deliver(t, testkit.StripeEvent(t, "customer.subscription.created"))
	want := emulatorProductName(t, emu, fixtureProduct)

	id := subjects.BillingSubscriptionStarted + ":evt_1O5EuiGgdF1VjufLZtb3fvOc" // derived from the Stripe event alone
	started, ok := waitForMessages(t, js, id)[id].(*billingv1.SubscriptionStarted)
	if !ok {
		t.Fatalf("%s is not a SubscriptionStarted", id)
	}
	p := started.GetSubscription().GetPlan()
	if p.GetProductId() != fixtureProduct || p.GetProductName() != want {
		t.Errorf("plan product %q named %q, want %s named %q", p.GetProductId(), p.GetProductName(), fixtureProduct, want)
	}
	if started.GetMeta().GetEventId() != id {
		t.Errorf("meta.event_id %q, want %q", started.GetMeta().GetEventId(), id)
	}

	// An upgrade carries the plan before the change too.
	hist := newHistory(t, "PlanNames1", "cus_PlanNames1", "plans@example.com", "Plan Names", 1698249000)
	created := hist.subscriptionCreated(0, plan{Price: "price_basic", Unit: 1000, Quantity: 1}, false)
	upgrade := hist.changePlan(3600, plan{Price: "price_pro", Unit: 3000, Quantity: 1})
	h.deliver(t, created.Raw)
	h.deliver(t, upgrade.Raw)
	upID := subjects.BillingSubscriptionUpgraded + ":" + upgrade.ID
	up, ok := waitForMessages(t, js, upID)[upID].(*billingv1.SubscriptionUpgraded)
	if !ok {
		t.Fatalf("%s is not a SubscriptionUpgraded", upID)
	}
	for what, p := range map[string]*billingv1.Plan{"plan": up.GetSubscription().GetPlan(), "previous_plan": up.GetPreviousPlan()} {
		if p.GetProductName() != want {
			t.Errorf("upgrade's %s (%s) named %q, want %q", what, p.GetPriceId(), p.GetProductName(), want)
		}
	}
}

// TestProductIsAskedForOnce: many events naming one product, handled by
// identity's concurrent workers while the first lookup is still waiting for
// Stripe, make one GET /v1/products/{id}, and every plan is named.
func TestProductIsAskedForOnce(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
	putProduct(t, emu, fixtureProduct, "Switchyard Pro")
	emu.SetLatency(300 * time.Millisecond) // the misses overlap
	api := httptest.NewServer(emu)
	defer api.Close()
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL, "IDENTITY_WORKERS": "8"})

	var ids []string
	for i := range 24 {
		raw, id := subscriptionStartedFor(t, fmt.Sprintf("Once%02d", i), fixtureProduct)
		h.deliver(t, raw)
		ids = append(ids, id)
	}
	got := waitForMessages(t, js, ids...)
	for _, id := range ids {
		if name := got[id].(*billingv1.SubscriptionStarted).GetSubscription().GetPlan().GetProductName(); name != "Switchyard Pro" {
			t.Errorf("%s: plan named %q, want Switchyard Pro", id, name)
		}
	}
	var asked int
	for _, r := range emu.Requests() {
		if strings.HasPrefix(r.Path, "/v1/products/") {
			asked++
			if r.Path != "/v1/products/"+fixtureProduct {
				t.Errorf("asked for %s", r.Path)
			}
		}
	}
	if asked != 1 {
		t.Errorf("%d events made %d product requests, want 1", len(ids), asked)
	}
}

// TestPlanNameLookupFailureDoesNotHoldTheEvent: when the Stripe API fails
// to name a product — a 500, no answer at all, or a connection closed
// without one — the events are still published within the lookup's
// timeout, without the name, nothing is dead-lettered, and the product is
// asked for once, not once per event (a failure waits a minute).
func TestPlanNameLookupFailureDoesNotHoldTheEvent(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity"}})
	var (
		mu    sync.Mutex
		asked = map[string]int{}
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		product, isProduct := strings.CutPrefix(r.URL.Path, "/v1/products/")
		if isProduct {
			mu.Lock()
			asked[product]++
			mu.Unlock()
		}
		switch product {
		case "prod_NoAnswer": // until the client gives up
			<-r.Context().Done()
		case "prod_HangsUp":
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		default:
			emu.ServeHTTP(w, r)
		}
	}))
	defer api.Close()
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL})

	tests := []struct {
		name    string
		product string
		arrange func()
	}{
		{"500", "prod_Fails500", func() {
			putProduct(t, emu, "prod_Fails500", "Named only if asked again")
			emu.FailNext(1, http.StatusInternalServerError)
		}},
		{"no answer within the timeout", "prod_NoAnswer", func() {}},
		{"connection closed without an answer", "prod_HangsUp", func() {}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.arrange()
			var ids []string
			for j := range 5 {
				raw, id := subscriptionStartedFor(t, fmt.Sprintf("Fail%d%02d", i, j), tt.product)
				h.deliver(t, raw)
				ids = append(ids, id)
			}
			got := waitForMessages(t, js, ids...)
			for _, id := range ids {
				p := got[id].(*billingv1.SubscriptionStarted).GetSubscription().GetPlan()
				if p.GetProductId() != tt.product || p.GetProductName() != "" {
					t.Errorf("%s: plan of product %q named %q, want %s without a name", id, p.GetProductId(), p.GetProductName(), tt.product)
				}
			}
			mu.Lock()
			n := asked[tt.product]
			mu.Unlock()
			if n != 1 {
				t.Errorf("%d events asked for %s %d times, want once", len(ids), tt.product, n)
			}
		})
	}
	settledStripeConsumer(t, js)
	if dls := identityDeadLetters(t, js); len(dls) != 0 {
		t.Errorf("%d dead letters, want none: a plan's name is cosmetic; first: %s", len(dls), dls[0].Reason)
	}
}
