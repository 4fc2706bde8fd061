package stripeapi_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
)

// account is what a Server holds, for comparing two.
type account struct {
	objects map[string]map[string]json.RawMessage
	events  []stripeapi.Event
}

var stateKinds = []string{"customer", "subscription", "invoice", "charge", "payment_intent", "product", "webhook_endpoint"}

func accountOf(s *stripeapi.Server) account {
	a := account{objects: map[string]map[string]json.RawMessage{}, events: s.Events()}
	for _, k := range stateKinds {
		a.objects[k] = s.Objects(k)
	}
	return a
}

func sameAccount(t *testing.T, got, want account) {
	t.Helper()
	for _, k := range stateKinds {
		if !maps.EqualFunc(got.objects[k], want.objects[k], func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Errorf("%s objects after reload: %d, want %d byte for byte", k, len(got.objects[k]), len(want.objects[k]))
		}
	}
	if !slices.EqualFunc(got.events, want.events, func(a, b stripeapi.Event) bool {
		return a.ID == b.ID && a.Type == b.Type && a.Created == b.Created && a.Livemode == b.Livemode && a.Delivered == b.Delivered && bytes.Equal(a.Raw, b.Raw)
	}) {
		t.Errorf("events after reload differ (order, flags or bytes):\n got %d\nwant %d", len(got.events), len(want.events))
	}
}

// openKept opens a Server kept in path by a statefile Keeper, closed with
// the test, and serves it.
func openKept(t *testing.T, path string) (*stripeapi.Server, *statefile.Keeper, string) {
	t.Helper()
	srv, base := newServer(t, stripeapi.Options{})
	k, err := statefile.Open(path, srv, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return srv, k, base
}

// TestStateSurvivesReload: a Keeper's journal records (no snapshot, as after
// a kill -9) and its snapshot both bring back every object and event, byte
// for byte, in list order, with delivery flags, deleted products and the
// registered events' objects; nothing is marked changed by loading.
func TestStateSurvivesReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stripe.json")
	srv, k, base := openKept(t, path)
	for _, name := range []string{"customer.created", "customer.updated.email-set", "customer.subscription.created", "invoice.payment_failed"} {
		raw, _, _ := fixtureEvent(t, name)
		mustNoErr(t, srv.SeedFromEvent(raw))
	}
	mustNoErr(t, srv.PutProduct(`{"id":"prod_OnMHDH6VBmYlTr","name":"T-shirt","livemode":false}`))
	mustNoErr(t, srv.PutPaymentIntent(`{"id":"pi_1Kept","object":"payment_intent","livemode":false}`))
	mustNoErr(t, srv.PutWebhookEndpoint(`{"id":"we_1Kept","url":"http://127.0.0.1:8080/webhooks/stripe","enabled_events":["*"],"livemode":false,"secret":"whsec_x"}`))
	mustNoErr(t, srv.SeedFromEvent(syntheticEvent(t, "evt_1KeptProductGone", "product.deleted", fixtureNow.Unix()-60, false)))
	mustNoErr(t, srv.AddEvent(syntheticEvent(t, "evt_1KeptUndelivered", "invoice.paid", fixtureNow.Unix()-30, false), false))
	mustNoErr(t, k.Save())
	raw, _, _ := fixtureEvent(t, "charge.refunded")
	if r := post(t, base+stripeapi.EmulatorEventsPath, testKey, raw); r.status != http.StatusOK {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	mustNoErr(t, srv.SetDelivered("evt_1KeptUndelivered", true))
	mustNoErr(t, srv.AddEvent(syntheticEvent(t, "evt_1KeptUndelivered2", "invoice.paid", fixtureNow.Unix()-30, false), false))
	mustNoErr(t, k.Save())
	want := accountOf(srv)
	if len(want.objects["charge"]) != 1 || len(want.events) != 8 {
		t.Fatalf("seeded %d charges and %d events, want 1 and 8", len(want.objects["charge"]), len(want.events))
	}

	fromJournal, k2, base2 := openKept(t, path)
	sameAccount(t, accountOf(fromJournal), want)
	if r := get(t, base2+"/v1/webhook_endpoints/we_1Kept", testKey); r.status != http.StatusOK || bytes.Contains(r.body, []byte("whsec_")) {
		t.Errorf("the endpoint after reload: %d %s", r.status, r.body)
	}
	select {
	case <-fromJournal.Changes():
		t.Error("loading the state signalled a change")
	default:
	}
	if rec, err := fromJournal.MarshalChanges(); err != nil || rec != nil {
		t.Errorf("loading the state marked changes: %s, %v", rec, err)
	}
	// The registered event is the same event after the reload: 200 again.
	if r := post(t, base2+stripeapi.EmulatorEventsPath, testKey, raw); r.status != http.StatusOK {
		t.Errorf("the registered event again after the reload: %d %s", r.status, r.body)
	}
	mustNoErr(t, k2.Flush()) // folds the journal into a snapshot

	fromSnapshot, _, _ := openKept(t, path)
	sameAccount(t, accountOf(fromSnapshot), want)
}

// TestSeedingAgainChangesNothing: seeding the same events and objects
// again (as dev does at every start) marks nothing changed, so a restart
// writes nothing.
func TestSeedingAgainChangesNothing(t *testing.T) {
	srv := stripeapi.New(stripeapi.Options{Now: func() time.Time { return fixtureNow }})
	raw, _, _ := fixtureEvent(t, "customer.subscription.updated")
	mustNoErr(t, srv.SeedFromEvent(raw))
	if rec, err := srv.MarshalChanges(); err != nil || rec == nil {
		t.Fatalf("the first seed marked nothing: %v", err)
	}
	<-srv.Changes()
	mustNoErr(t, srv.SeedFromEvent(raw))
	if rec, err := srv.MarshalChanges(); err != nil || rec != nil {
		t.Errorf("seeding the same event again marked changes: %s, %v", rec, err)
	}
	select {
	case <-srv.Changes():
		t.Error("seeding the same event again signalled a change")
	default:
	}
}

func TestUnmarshalStateRefusesOtherVersions(t *testing.T) {
	srv := stripeapi.New(stripeapi.Options{})
	for _, bad := range []string{`{"version":2}`, `not json`, `{"version":1,"events":[{"id":"evt_1","raw":"{}"}]}`,
		`{"version":1,"objects":[{"kind":"charge","id":"ch_1","raw":"{\"id\":\"ch_2\"}"}]}`} {
		if err := srv.UnmarshalState([]byte(bad)); err == nil {
			t.Errorf("UnmarshalState(%s) = nil, want an error", bad)
		}
	}
}
