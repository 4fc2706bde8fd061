package stripeapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	raw, _, cusID := fixtureEvent(t, "customer.created")
	mustNoErr(t, srv.SeedFromEvent(raw))
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}

	tests := []struct {
		name        string
		auth        string // Authorization header; empty: none
		wantStatus  int
		wantMessage string // prefix of error.message
	}{
		{"bearer secret key", "Bearer " + testKey, 200, ""},
		{"bearer restricted key", "Bearer " + restrictedKey, 200, ""},
		{"basic auth, key as user name", basic(testKey, ""), 200, ""},
		{"no header", "", 401, "You did not provide an API key."},
		{"empty bearer", "Bearer ", 401, "You did not provide an API key."},
		{"unknown scheme", "Token " + testKey, 401, "You did not provide an API key."},
		{"basic with empty user", basic("", testKey), 401, "You did not provide an API key."},
		{"unknown key", "Bearer sk_test_51EmuLatorKeyXXXXwxyz9999", 401,
			"Invalid API Key provided: sk_test_" + strings.Repeat("*", 21) + "9999"},
		{"unknown key by basic auth", basic("sk_test_51EmuLatorKeyXXXXwxyz9999", ""), 401,
			"Invalid API Key provided: sk_test_" + strings.Repeat("*", 21) + "9999"},
		{"short unknown key", "Bearer nope_12345", 401, "Invalid API Key provided: ******2345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(http.MethodGet, url+"/v1/customers/"+cusID, nil)
			mustNoErr(t, err)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			r := do(t, req)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if !requestIDPattern.MatchString(r.header.Get("Request-Id")) {
				t.Errorf("Request-Id = %q, want req_ and 14 alphanumerics", r.header.Get("Request-Id"))
			}
			if tt.wantStatus == 200 {
				return
			}
			e := decodeError(t, r)
			if e.Error.Type != "invalid_request_error" || !strings.HasPrefix(e.Error.Message, tt.wantMessage) {
				t.Errorf("error = %+v, want invalid_request_error %q…", e.Error, tt.wantMessage)
			}
			if strings.Contains(string(r.body), "EmuLatorKeyXXXX") {
				t.Errorf("error body leaks the unmasked key: %s", r.body)
			}
			if e.Error.RequestLogURL != "" {
				t.Errorf("unauthenticated error has request_log_url %q", e.Error.RequestLogURL)
			}
		})
	}
}

func TestDefaultKeysAcceptAnyTestKey(t *testing.T) {
	t.Parallel()
	_, url := newServer(t, stripeapi.Options{APIKeys: []string{}})
	for key, want := range map[string]int{
		"sk_test_anything": 404, // authenticated: the customer just does not exist
		"rk_test_anything": 404,
		"sk_live_anything": 401,
		"pk_test_anything": 401,
	} {
		if r := get(t, url+"/v1/customers/cus_x", key); r.status != want {
			t.Errorf("%s: status %d, want %d: %s", key, r.status, want, r.body)
		}
	}
}

func TestRetrieveReturnsStoredObject(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	tests := []struct {
		fixture string
		path    string
	}{
		{"customer.updated.email-set", "/v1/customers/"},
		{"customer.subscription.updated", "/v1/subscriptions/"},
		{"invoice.paid", "/v1/invoices/"},
		{"charge.refunded", "/v1/charges/"},
	}
	for _, tt := range tests {
		raw, _, objID := fixtureEvent(t, tt.fixture)
		mustNoErr(t, srv.SeedFromEvent(raw))
		t.Run(tt.fixture, func(t *testing.T) {
			r := get(t, url+tt.path+objID, testKey)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var env struct {
				Data struct {
					Object json.RawMessage `json:"object"`
				} `json:"data"`
			}
			mustNoErr(t, json.Unmarshal(raw, &env))
			if !jsonEqual(t, r.body, env.Data.Object) {
				t.Errorf("body differs from the fixture's data.object:\n%s", r.body)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
		})
	}
	t.Run("event", func(t *testing.T) {
		raw, id, _ := fixtureEvent(t, "invoice.paid")
		r := get(t, url+"/v1/events/"+id, testKey)
		if r.status != http.StatusOK || !jsonEqual(t, r.body, raw) {
			t.Fatalf("status %d, body differs from the fixture:\n%s", r.status, r.body)
		}
	})
	t.Run("key order kept", func(t *testing.T) {
		mustNoErr(t, srv.PutCustomer(json.RawMessage(`{"id":"cus_order","object":"customer","zeta":1,"alpha":2}`)))
		r := get(t, url+"/v1/customers/cus_order", testKey)
		if z, a := strings.Index(string(r.body), "zeta"), strings.Index(string(r.body), "alpha"); z < 0 || a < z {
			t.Errorf("key order not kept: %s", r.body)
		}
	})
}

func TestRetrieveMissing(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	mustNoErr(t, srv.PutCustomer(map[string]any{"id": "cus_live", "livemode": true}))

	tests := []struct {
		name    string
		path    string
		key     string
		message string
	}{
		{"customer", "/v1/customers/cus_x", testKey, "No such customer: 'cus_x'"},
		{"subscription", "/v1/subscriptions/sub_x", testKey, "No such subscription: 'sub_x'"},
		{"invoice", "/v1/invoices/in_x", testKey, "No such invoice: 'in_x'"},
		{"charge", "/v1/charges/ch_x", testKey, "No such charge: 'ch_x'"},
		{"event", "/v1/events/evt_x", testKey, "No such event: 'evt_x'"},
		{"live object, test key", "/v1/customers/cus_live", testKey,
			"No such customer: 'cus_live'; a similar object exists in live mode, but a test mode key was used to make this request."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, url+tt.path, tt.key)
			if r.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", r.status, r.body)
			}
			e := decodeError(t, r).Error
			if e.Type != "invalid_request_error" || e.Code != "resource_missing" || e.Param != "id" || e.Message != tt.message {
				t.Errorf("error = %+v\nwant invalid_request_error resource_missing param id %q", e, tt.message)
			}
			if e.DocURL != "https://stripe.com/docs/error-codes/resource-missing" {
				t.Errorf("doc_url = %q", e.DocURL)
			}
			reqID := r.header.Get("Request-Id")
			if !strings.HasPrefix(e.RequestLogURL, "https://dashboard.stripe.com/test/logs/"+reqID+"?t=") {
				t.Errorf("request_log_url = %q, want the test-mode log of %s", e.RequestLogURL, reqID)
			}
		})
	}
	if r := get(t, url+"/v1/customers/cus_live", liveKey); r.status != http.StatusOK {
		t.Errorf("live key, live customer: status %d: %s", r.status, r.body)
	}
}

func TestUnsupportedRequests(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	mustNoErr(t, srv.PutCustomer(`{"id":"cus_1"}`))
	tests := []struct {
		name       string
		method     string
		path       string
		header     string // extra header "Name: value"
		wantStatus int
		wantMsg    string
		wantParam  string
	}{
		{"unknown path", "GET", "/v1/balance_transactions", "", 404,
			"Unrecognized request URL (GET: /v1/balance_transactions). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", ""},
		{"list of another collection", "GET", "/v1/customers", "", 404, "Unrecognized request URL (GET: /v1/customers).", ""},
		{"nested path", "GET", "/v1/customers/cus_1/sources", "", 404, "Unrecognized request URL", ""},
		{"write", "POST", "/v1/customers/cus_1", "", 501, "stripeapi: POST /v1/customers/cus_1 is not emulated", ""},
		{"delete", "DELETE", "/v1/customers/cus_1", "", 501, "stripeapi: DELETE", ""},
		{"unknown parameter", "GET", "/v1/customers/cus_1?foo=bar", "", 400, "Received unknown parameter: foo", "foo"},
		{"expand", "GET", "/v1/customers/cus_1?expand[]=default_source", "", 400, "stripeapi: expand is not emulated", "expand[]"},
		{"connect", "GET", "/v1/customers/cus_1", "Stripe-Account: acct_1", 400, "stripeapi: the Stripe-Account header", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, url+tt.path, nil)
			mustNoErr(t, err)
			req.Header.Set("Authorization", "Bearer "+testKey)
			if name, value, ok := strings.Cut(tt.header, ": "); ok {
				req.Header.Set(name, value)
			}
			r := do(t, req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			e := decodeError(t, r).Error
			if !strings.HasPrefix(e.Message, tt.wantMsg) || e.Param != tt.wantParam {
				t.Errorf("error = %+v, want message %q… param %q", e, tt.wantMsg, tt.wantParam)
			}
			if tt.wantStatus == http.StatusNotImplemented && r.header.Get("Stripe-Should-Retry") != "false" {
				t.Errorf("501 without Stripe-Should-Retry: false")
			}
		})
	}
}

func TestStripeVersionIsSaidBack(t *testing.T) {
	t.Parallel()
	_, url := newServer(t, stripeapi.Options{})
	for _, tt := range []struct{ sent, want string }{
		{"", stripeapi.DefaultAPIVersion},
		{"2020-08-27", "2020-08-27"},
		{"2024-09-30.acacia", "2024-09-30.acacia"},
	} {
		req, err := http.NewRequest(http.MethodGet, url+"/v1/events", nil)
		mustNoErr(t, err)
		req.Header.Set("Authorization", "Bearer "+testKey)
		if tt.sent != "" {
			req.Header.Set("Stripe-Version", tt.sent)
		}
		if got := do(t, req).header.Get("Stripe-Version"); got != tt.want {
			t.Errorf("sent %q: Stripe-Version = %q, want %q", tt.sent, got, tt.want)
		}
	}
	_, url = newServer(t, stripeapi.Options{APIVersion: "2022-11-15"})
	if got := get(t, url+"/v1/events", testKey).header.Get("Stripe-Version"); got != "2022-11-15" {
		t.Errorf("account default: Stripe-Version = %q, want 2022-11-15", got)
	}
}

func TestSeedFromEventKeepsNewestVersion(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, stripeapi.Options{})
	// Newest first: the older events seeded afterwards must not win.
	for _, name := range []string{"customer.subscription.deleted", "customer.subscription.updated", "customer.subscription.created",
		"invoice.paid", "invoice.payment_failed", "customer.updated.email-set", "customer.updated", "customer.created",
		"charge.refunded", "charge.dispute.created", "checkout.session.completed"} {
		mustNoErr(t, srv.SeedFromEvent(testkit.StripeEvent(t, name)))
	}
	status := func(kind, id string) map[string]any {
		t.Helper()
		raw, ok := srv.Object(kind, id)
		if !ok {
			t.Fatalf("no %s %s", kind, id)
		}
		var m map[string]any
		mustNoErr(t, json.Unmarshal(raw, &m))
		return m
	}
	if got := status("subscription", "sub_1O00X8GgdF1VjufLsFtFRRh8")["status"]; got != "canceled" {
		t.Errorf("subscription status = %v, want canceled (the deleted event is newest)", got)
	}
	if got := status("invoice", "in_1O00X6GgdF1VjufL97zeI8ME")["status"]; got != "paid" {
		t.Errorf("invoice status = %v, want paid", got)
	}
	if got := status("customer", "cus_OnMHOpJU2HN6Xv")["email"]; got != "jenny.rosen@example.com" {
		t.Errorf("customer email = %v, want the email-set version", got)
	}
	if n := len(srv.Objects("dispute")) + len(srv.Objects("checkout.session")); n != 0 {
		t.Errorf("stored %d objects of kinds the emulator does not serve", n)
	}
	if got, want := len(srv.Events()), 11; got != want {
		t.Errorf("Events() has %d events, want %d", got, want)
	}

	// customer.deleted leaves Stripe's deleted stub.
	del := syntheticEvent(t, "evt_deleted", "customer.deleted", 1698256900, false)
	var m map[string]any
	mustNoErr(t, json.Unmarshal(del, &m))
	m["data"] = map[string]any{"object": map[string]any{"id": "cus_OnMHOpJU2HN6Xv", "object": "customer", "email": "x@example.com"}}
	del, _ = json.Marshal(m)
	mustNoErr(t, srv.SeedFromEvent(del))
	if got := status("customer", "cus_OnMHOpJU2HN6Xv"); got["deleted"] != true || len(got) != 3 {
		t.Errorf("deleted customer = %v, want {id, object, deleted: true}", got)
	}
}

func TestPutValidates(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, stripeapi.Options{})
	tests := []struct {
		name    string
		put     func() error
		wantErr bool
	}{
		{"raw JSON", func() error { return srv.PutCharge(json.RawMessage(`{"id":"ch_1","object":"charge"}`)) }, false},
		{"map without object", func() error { return srv.PutInvoice(map[string]any{"id": "in_1"}) }, false},
		{"generic Put by object", func() error { return srv.Put(`{"id":"sub_1","object":"subscription"}`) }, false},
		{"wrong kind", func() error { return srv.PutCustomer(`{"id":"ch_2","object":"charge"}`) }, true},
		{"no id", func() error { return srv.PutCustomer(`{"object":"customer"}`) }, true},
		{"not an object", func() error { return srv.PutCustomer(`[1,2]`) }, true},
		{"generic Put without object", func() error { return srv.Put(`{"id":"x"}`) }, true},
		{"kind not emulated", func() error { return srv.Put(`{"id":"dp_1","object":"dispute"}`) }, true},
		{"event without created", func() error { return srv.AddEvent([]byte(`{"id":"evt_1","object":"event","type":"x"}`), true) }, true},
		{"event of wrong object", func() error {
			return srv.AddEvent([]byte(`{"id":"evt_1","object":"charge","type":"x","created":1}`), true)
		}, true},
	}
	for _, tt := range tests {
		if err := tt.put(); (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, wantErr %v", tt.name, err, tt.wantErr)
		}
	}
	if raw, ok := srv.Object("invoice", "in_1"); !ok || !jsonEqual(t, raw, []byte(`{"id":"in_1","object":"invoice"}`)) {
		t.Errorf("invoice stored as %s, want object filled in", raw)
	}
}
