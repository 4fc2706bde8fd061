package stripeapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
)

// post sends body to url with Bearer key (none when key is empty).
func post(t *testing.T, url, key string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return do(t, req)
}

// TestRegisterEvent: POST /_emulator/events stores the event as delivered
// and the object it carries, served like any other; the same bytes again
// answer 200 and change nothing, other bytes under the id answer 409.
func TestRegisterEvent(t *testing.T) {
	srv, base := newServer(t, stripeapi.Options{})
	raw, evtID, chargeID := fixtureEvent(t, "charge.refunded")

	r := post(t, base+stripeapi.EmulatorEventsPath, testKey, raw)
	if r.status != http.StatusOK || !jsonEqual(t, r.body, raw) {
		t.Fatalf("register: %d %s, want 200 and the event", r.status, r.body)
	}
	if !requestIDPattern.MatchString(r.header.Get("Request-Id")) {
		t.Errorf("Request-Id %q", r.header.Get("Request-Id"))
	}
	var ev struct {
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	mustNoErr(t, json.Unmarshal(raw, &ev))
	if got := get(t, base+"/v1/charges/"+chargeID, testKey); got.status != http.StatusOK || !jsonEqual(t, got.body, ev.Data.Object) {
		t.Errorf("GET the registered event's charge: %d %s", got.status, got.body)
	}
	if got := get(t, base+"/v1/events/"+evtID, testKey); got.status != http.StatusOK || !jsonEqual(t, got.body, raw) {
		t.Errorf("GET the registered event: %d %s", got.status, got.body)
	}
	evs := srv.Events()
	if len(evs) != 1 || evs[0].ID != evtID || !evs[0].Delivered || !bytes.Equal(evs[0].Raw, raw) {
		t.Fatalf("stored events %+v, want the one event, delivered, byte for byte", evs)
	}

	again := post(t, base+stripeapi.EmulatorEventsPath, testKey, raw)
	if again.status != http.StatusOK || !jsonEqual(t, again.body, raw) {
		t.Errorf("the same event again: %d %s, want 200", again.status, again.body)
	}
	changed := bytes.Replace(raw, []byte(`"amount_refunded": 100`), []byte(`"amount_refunded": 50`), 1)
	if bytes.Equal(changed, raw) {
		t.Fatal("the fixture has no amount_refunded to change")
	}
	conflict := post(t, base+stripeapi.EmulatorEventsPath, testKey, changed)
	if conflict.status != http.StatusConflict {
		t.Fatalf("other bytes under a stored id: %d %s, want 409", conflict.status, conflict.body)
	}
	if e := decodeError(t, conflict); e.Error.Type != "idempotency_error" || e.Error.Param != "id" || !strings.Contains(e.Error.Message, evtID) {
		t.Errorf("409 body %+v", e.Error)
	}
	if got, _ := srv.Object("charge", chargeID); !jsonEqual(t, got, ev.Data.Object) {
		t.Errorf("a refused event changed the charge: %s", got)
	}
	if evs := srv.Events(); len(evs) != 1 || !bytes.Equal(evs[0].Raw, raw) {
		t.Errorf("a refused event changed the stored event: %+v", evs)
	}
}

// TestRegisterEventValidates: what is not an event is a 400 with Stripe's
// error body naming the field; keys are checked as for the API, and an
// event registers only with a key of its mode.
func TestRegisterEventValidates(t *testing.T) {
	srv, base := newServer(t, stripeapi.Options{})
	valid, _, _ := fixtureEvent(t, "invoice.paid")
	edit := func(f func(map[string]any)) []byte {
		var m map[string]any
		mustNoErr(t, json.Unmarshal(valid, &m))
		f(m)
		b, err := json.Marshal(m)
		mustNoErr(t, err)
		return b
	}
	for _, tc := range []struct {
		name      string
		key       string
		body      []byte
		wantParam string
	}{
		{"not JSON", testKey, []byte(`{"id": "evt_1`), ""},
		{"not an object", testKey, []byte(`["evt_1"]`), ""},
		{"no id", testKey, edit(func(m map[string]any) { delete(m, "id") }), "id"},
		{"empty id", testKey, edit(func(m map[string]any) { m["id"] = "" }), "id"},
		{"not an event", testKey, edit(func(m map[string]any) { m["object"] = "charge" }), "object"},
		{"no type", testKey, edit(func(m map[string]any) { delete(m, "type") }), "type"},
		{"no created", testKey, edit(func(m map[string]any) { delete(m, "created") }), "created"},
		{"no data", testKey, edit(func(m map[string]any) { delete(m, "data") }), "data[object]"},
		{"no data.object", testKey, edit(func(m map[string]any) { m["data"] = map[string]any{"previous_attributes": nil} }), "data[object]"},
		{"data.object without id", testKey, edit(func(m map[string]any) { m["data"] = map[string]any{"object": map[string]any{"object": "invoice"}} }), "data[object][id]"},
		{"live event, test key", testKey, edit(func(m map[string]any) { m["livemode"] = true }), "livemode"},
		{"test event, live key", liveKey, valid, "livemode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, base+stripeapi.EmulatorEventsPath, tc.key, tc.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if e := decodeError(t, r); e.Error.Type != "invalid_request_error" || e.Error.Param != tc.wantParam || e.Error.RequestLogURL == "" {
				t.Errorf("error %+v, want invalid_request_error with param %q and a request log URL", e.Error, tc.wantParam)
			}
		})
	}
	if r := post(t, base+stripeapi.EmulatorEventsPath, "", valid); r.status != http.StatusUnauthorized {
		t.Errorf("without a key: %d, want 401", r.status)
	}
	if r := post(t, base+stripeapi.EmulatorEventsPath, "sk_test_unknownKey0000000000", valid); r.status != http.StatusUnauthorized {
		t.Errorf("with an unknown key: %d, want 401", r.status)
	}
	if r := get(t, base+stripeapi.EmulatorEventsPath, testKey); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != http.MethodPost {
		t.Errorf("GET %s: %d (Allow %q), want 405 allowing POST", stripeapi.EmulatorEventsPath, r.status, r.header.Get("Allow"))
	}
	if evs := srv.Events(); len(evs) != 0 {
		t.Errorf("refused requests stored %d events", len(evs))
	}

	// A live event with a live key is stored, and a test key does not see it.
	live := edit(func(m map[string]any) {
		m["id"], m["livemode"] = "evt_1LiveRegisteredGgdF1Vju", true
		obj := m["data"].(map[string]any)["object"].(map[string]any)
		obj["id"], obj["livemode"] = "in_1LiveRegisteredGgdF1Vj", true
	})
	if r := post(t, base+stripeapi.EmulatorEventsPath, liveKey, live); r.status != http.StatusOK {
		t.Fatalf("a live event with a live key: %d %s", r.status, r.body)
	}
	if r := get(t, base+"/v1/invoices/in_1LiveRegisteredGgdF1Vj", liveKey); r.status != http.StatusOK {
		t.Errorf("the live invoice with the live key: %d", r.status)
	}
	if r := get(t, base+"/v1/invoices/in_1LiveRegisteredGgdF1Vj", testKey); r.status != http.StatusNotFound ||
		!strings.Contains(decodeError(t, r).Error.Message, "exists in live mode") {
		t.Errorf("the live invoice with a test key: %d %s, want Stripe's other-mode 404", r.status, r.body)
	}
}

// TestRegisterEventBypassesFaults: injected failures and rate limits stand
// for Stripe's behaviour towards the hub; the emulator's own endpoint is
// not Stripe and takes neither (nor uses up a queued failure).
func TestRegisterEventBypassesFaults(t *testing.T) {
	srv, base := newServer(t, stripeapi.Options{})
	srv.FailNext(1, http.StatusServiceUnavailable)
	raw, _, objectID := fixtureEvent(t, "invoice.paid")
	if r := post(t, base+stripeapi.EmulatorEventsPath, testKey, raw); r.status != http.StatusOK {
		t.Fatalf("register with a failure queued: %d %s", r.status, r.body)
	}
	if r := get(t, base+"/v1/invoices/"+objectID, testKey); r.status != http.StatusServiceUnavailable {
		t.Errorf("the next API request: %d, want the queued 503", r.status)
	}
}

// TestRegisterObject: POST /_emulator/objects stores an object of a kind
// the emulator serves, which GET then answers byte for byte; a newer
// version replaces it; other kinds, bodies without an id and objects of
// the other mode are refused with Stripe-shaped 400s, and nothing is
// stored for them.
func TestRegisterObject(t *testing.T) {
	srv, base := newServer(t, stripeapi.Options{})
	charge := []byte(`{"id":"ch_3RegisteredGgdF1VjufL0000","object":"charge","amount":2000,"customer":"cus_RegisteredGgdF1","livemode":false}`)
	if r := post(t, base+stripeapi.EmulatorObjectsPath, testKey, charge); r.status != http.StatusOK {
		t.Fatalf("register a charge: %d %s", r.status, r.body)
	}
	if r := get(t, base+"/v1/charges/ch_3RegisteredGgdF1VjufL0000", testKey); r.status != http.StatusOK || !jsonEqual(t, r.body, charge) {
		t.Errorf("GET the registered charge: %d %s", r.status, r.body)
	}
	newer := []byte(`{"id":"ch_3RegisteredGgdF1VjufL0000","object":"charge","amount":2000,"refunded":true,"customer":"cus_RegisteredGgdF1","livemode":false}`)
	if r := post(t, base+stripeapi.EmulatorObjectsPath, testKey, newer); r.status != http.StatusOK {
		t.Fatalf("register a newer version: %d %s", r.status, r.body)
	}
	if got, _ := srv.Object("charge", "ch_3RegisteredGgdF1VjufL0000"); !jsonEqual(t, got, newer) {
		t.Errorf("stored %s, want the newer version", got)
	}

	for _, tc := range []struct {
		name, key string
		body      string
		param     string
	}{
		{"not JSON", testKey, `{"id":`, "object"},
		{"an event", testKey, `{"id":"evt_1NotAnObjectGgdF1","object":"event"}`, "object"},
		{"a kind not emulated", testKey, `{"id":"dp_1NotServedGgdF1","object":"dispute"}`, "object"},
		{"a webhook endpoint", testKey, `{"id":"we_1NotServedGgdF1","object":"webhook_endpoint"}`, "object"},
		{"no id", testKey, `{"object":"customer"}`, ""},
		{"live object, test key", testKey, `{"id":"cus_LiveGgdF1Vjuf","object":"customer","livemode":true}`, "livemode"},
		{"test object, live key", liveKey, `{"id":"cus_TestGgdF1Vjuf","object":"customer","livemode":false}`, "livemode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, base+stripeapi.EmulatorObjectsPath, tc.key, []byte(tc.body))
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if e := decodeError(t, r); e.Error.Type != "invalid_request_error" || e.Error.Param != tc.param {
				t.Errorf("error %+v, want invalid_request_error with param %q", e.Error, tc.param)
			}
		})
	}
	if n := len(srv.Objects("customer")); n != 0 {
		t.Errorf("refused requests stored %d customers", n)
	}
	if r := post(t, base+stripeapi.EmulatorObjectsPath, "", charge); r.status != http.StatusUnauthorized {
		t.Errorf("without a key: %d, want 401", r.status)
	}
	if r := get(t, base+stripeapi.EmulatorObjectsPath, testKey); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", stripeapi.EmulatorObjectsPath, r.status)
	}
}
