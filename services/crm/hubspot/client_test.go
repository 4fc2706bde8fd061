package hubspot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/errclass"
	crmhubspot "github.com/switchyard/switchyard/services/crm/hubspot"
)

const token = "pat-na1-0b7c5d1e-1111-4a2b-9c3d-000000000001"

var t0 = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// clock is a fake clock shared by the emulator and the client; sleeping
// on it advances it.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	slept time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept += d
	return nil
}

func (c *clock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

type env struct {
	srv    *hubspot.Server
	client *crmhubspot.Client
	clk    *clock
	ts     *httptest.Server
}

// newEnv starts the emulator on httptest (real HTTP) and a client that
// reaches it by BaseURL alone. Limits are off unless opts sets them.
func newEnv(t *testing.T, opts hubspot.Options) *env {
	t.Helper()
	clk := &clock{t: t0}
	opts.Tokens = map[string][]string{token: nil}
	opts.Now = clk.Now
	if opts.TenSecondLimit == 0 {
		opts.TenSecondLimit = -1
	}
	srv := hubspot.New(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	c, err := crmhubspot.New(crmhubspot.Config{
		BaseURL:    ts.URL,
		Token:      config.NewSecret(token),
		HTTPClient: ts.Client(),
		Now:        clk.Now,
		Sleep:      clk.Sleep,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, client: c, clk: clk, ts: ts}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := crmhubspot.New(crmhubspot.Config{}); err == nil {
		t.Error("New without token: got nil error")
	}
	if _, err := crmhubspot.New(crmhubspot.Config{Token: config.NewSecret(token), BaseURL: "::"}); err == nil {
		t.Error("New with bad base URL: got nil error")
	}
}

func TestEnsurePropertiesIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	ctx := context.Background()
	for range 2 {
		if err := e.client.EnsureProperties(ctx, crmhubspot.DefaultProperties()); err != nil {
			t.Fatal(err)
		}
	}
	n := len(crmhubspot.DefaultProperties())
	req := e.srv.Requests()
	if got, want := req[hubspot.EndpointCreateProperty], n; got != want {
		t.Errorf("property creations: got %d, want %d", got, want)
	}
	if got, want := req[hubspot.EndpointGetProperty], 2*n; got != want {
		t.Errorf("property reads: got %d, want %d", got, want)
	}
	p, ok := e.srv.Property("switchyard_canonical_id")
	if !ok || !p.HasUniqueValue || p.Type != "string" || p.FieldType != "text" {
		t.Errorf("switchyard_canonical_id: got %+v, %v", p, ok)
	}
	if p, ok := e.srv.Property("switchyard_mrr"); !ok || p.Type != "number" || p.FieldType != "number" {
		t.Errorf("switchyard_mrr: got %+v, %v", p, ok)
	}
}

func TestEnsurePropertiesConflictIsFine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	// Another creator wins the race between our GET and POST: the emulator
	// answers the GET 404 via a fault, then the POST 409s.
	if err := e.client.EnsureProperties(context.Background(), crmhubspot.DefaultProperties()[:1]); err != nil {
		t.Fatal(err)
	}
	e.srv.FailNext(1, 404)
	if err := e.client.EnsureProperties(context.Background(), crmhubspot.DefaultProperties()[:1]); err != nil {
		t.Fatalf("409 after 404: got %v, want nil", err)
	}
	if got := e.srv.Requests()[hubspot.EndpointCreateProperty]; got != 2 {
		t.Errorf("property creations: got %d, want 2 (the second a 409)", got)
	}
}

func upsert(t *testing.T, e *env, in ...crmhubspot.ContactInput) []crmhubspot.ContactResult {
	t.Helper()
	res, err := e.client.UpsertContacts(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(in) {
		t.Fatalf("results: got %d, want %d", len(res), len(in))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
	return res
}

func TestUpsertNewThenUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	ctx := context.Background()
	if err := e.client.EnsureProperties(ctx, crmhubspot.DefaultProperties()); err != nil {
		t.Fatal(err)
	}
	props := map[string]string{
		"switchyard_canonical_id":        "cus_01",
		"stripe_customer_id":             "cus_stripe_1",
		"switchyard_plan":                "pro",
		"switchyard_subscription_status": "active",
		"switchyard_mrr":                 "49.5",
		"switchyard_last_payment_status": "succeeded",
		"lifecyclestage":                 "customer",
	}
	first := upsert(t, e, crmhubspot.ContactInput{Email: " Jenny.Rosen@Example.com", Properties: props})
	if !first[0].New || first[0].ID == "" {
		t.Fatalf("first upsert: got %+v, want new with id", first[0])
	}
	want := maps.Clone(props)
	want["email"] = "jenny.rosen@example.com"
	want["hs_object_id"] = first[0].ID
	want["createdate"] = t0.Format("2006-01-02T15:04:05.000Z")
	want["lastmodifieddate"] = want["createdate"]
	assertContacts(t, e, want)

	_ = e.clk.Sleep(ctx, time.Minute)
	props["switchyard_subscription_status"] = "past_due"
	props["switchyard_last_payment_status"] = "failed"
	props["switchyard_mrr"] = ""
	second := upsert(t, e, crmhubspot.ContactInput{Email: "jenny.rosen@example.com", Properties: props})
	if got, want := second[0], (crmhubspot.ContactResult{Email: "jenny.rosen@example.com", ID: first[0].ID}); got != want {
		t.Fatalf("second upsert: got %+v, want %+v", got, want)
	}
	want["switchyard_subscription_status"] = "past_due"
	want["switchyard_last_payment_status"] = "failed"
	delete(want, "switchyard_mrr")
	want["lastmodifieddate"] = t0.Add(time.Minute).Format("2006-01-02T15:04:05.000Z")
	assertContacts(t, e, want)
}

func assertContacts(t *testing.T, e *env, want ...map[string]string) {
	t.Helper()
	got := e.srv.Contacts()
	if len(got) != len(want) {
		t.Fatalf("contacts: got %d, want %d", len(got), len(want))
	}
	for i := range got {
		if !maps.Equal(got[i].Properties, want[i]) {
			t.Errorf("contact %d:\n got %v\nwant %v", i, got[i].Properties, want[i])
		}
	}
}

func TestUpsertSplitsLargeSlices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	in := make([]crmhubspot.ContactInput, 150)
	for i := range in {
		in[i] = crmhubspot.ContactInput{Email: fmt.Sprintf("user%03d@example.com", i), Properties: map[string]string{"firstname": fmt.Sprint(i)}}
	}
	res := upsert(t, e, in...)
	if got := e.srv.Requests()[hubspot.EndpointBatchUpsert]; got != 2 {
		t.Errorf("batch calls: got %d, want 2", got)
	}
	if got := len(e.srv.Contacts()); got != 150 {
		t.Errorf("contacts: got %d, want 150", got)
	}
	for i, r := range res {
		c, ok := e.srv.ContactByEmail(in[i].Email)
		if !ok || c.ID != r.ID || !r.New || c.Properties["firstname"] != fmt.Sprint(i) {
			t.Errorf("input %d: result %+v, contact %+v", i, r, c)
		}
	}
}

func TestUpsertDuplicateEmailsLastWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	res := upsert(t, e,
		crmhubspot.ContactInput{Email: "a@example.com", Properties: map[string]string{"firstname": "one"}},
		crmhubspot.ContactInput{Email: "A@example.com", Properties: map[string]string{"firstname": "two"}},
	)
	if res[0].ID != res[1].ID || !res[0].New || res[1].New {
		t.Errorf("results: got %+v", res)
	}
	if c, _ := e.srv.ContactByEmail("a@example.com"); c.Properties["firstname"] != "two" {
		t.Errorf("firstname: got %q, want two", c.Properties["firstname"])
	}
}

func TestUpsertPartialFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	res, err := e.client.UpsertContacts(context.Background(), []crmhubspot.ContactInput{
		{Email: "ok1@example.com"},
		{Email: "broken.address@nowhere.invalid"}, // well formed, refused by HubSpot (a TLD that does not exist)
		{Email: "ok2@example.com"},
	})
	if err != nil {
		t.Fatalf("got %v, want per-input errors only", err)
	}
	if res[0].Err != nil || res[2].Err != nil || res[0].ID == "" || res[2].ID == "" {
		t.Errorf("valid inputs: got %+v, %+v", res[0], res[2])
	}
	bad := res[1].Err
	if got := errclass.Of(bad); got != errclass.ClassPermanent {
		t.Errorf("class: got %v, want permanent (%v)", got, bad)
	}
	if bad == nil || !strings.Contains(bad.Error(), "INVALID_EMAIL") || !strings.Contains(bad.Error(), "VALIDATION_ERROR") {
		t.Errorf("error: got %v, want category and code", bad)
	}
	if !errors.Is(bad, crmhubspot.ErrInvalidEmail) {
		t.Errorf("error: got %v, want it to be ErrInvalidEmail", bad)
	}
	if bad != nil && strings.Contains(bad.Error(), "broken.address") {
		t.Errorf("error shows the email: %v", bad)
	}
	if got := len(e.srv.Contacts()); got != 2 {
		t.Errorf("contacts: got %d, want 2", got)
	}
}

func TestUpsertWholeRequestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      hubspot.Options
		setup     func(e *env)
		wantClass errclass.Class
		wantHint  time.Duration
	}{
		{name: "revoked token", setup: func(e *env) { e.srv.SetTokens(map[string][]string{"pat-other": nil}) },
			wantClass: errclass.ClassAuth},
		{name: "missing scope", setup: func(e *env) {
			e.srv.SetTokens(map[string][]string{token: {hubspot.ScopeContactsRead}})
		}, wantClass: errclass.ClassAuth},
		{name: "429 ten-secondly", setup: func(e *env) { e.srv.FailNext(1, 429) },
			wantClass: errclass.ClassTransient, wantHint: 10 * time.Second},
		{name: "429 with Retry-After", opts: hubspot.Options{TenSecondLimit: 1, RetryAfter: true},
			setup: func(e *env) {
				upsert(t, e, crmhubspot.ContactInput{Email: "first@example.com"})
				_ = e.clk.Sleep(context.Background(), 3*time.Second)
			},
			// A fresh client (an empty bucket) meets the exhausted window;
			// Retry-After (7 s) wins over the policy's 10 s.
			wantClass: errclass.ClassTransient, wantHint: 7 * time.Second},
		{name: "429 daily", opts: hubspot.Options{DailyLimit: 1},
			setup:     func(e *env) { upsert(t, e, crmhubspot.ContactInput{Email: "first@example.com"}) },
			wantClass: errclass.ClassTransient, wantHint: 12 * time.Hour},
		{name: "503 gateway", setup: func(e *env) { e.srv.FailNext(1, 503) }, wantClass: errclass.ClassTransient},
		{name: "500", setup: func(e *env) { e.srv.FailNext(1, 500) }, wantClass: errclass.ClassTransient},
		{name: "400", setup: func(e *env) {}, wantClass: errclass.ClassPermanent},
		{name: "network", setup: func(e *env) { e.ts.Close() }, wantClass: errclass.ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.opts)
			tt.setup(e)
			client := e.client
			if tt.name == "429 with Retry-After" {
				var err error
				client, err = crmhubspot.New(crmhubspot.Config{BaseURL: e.ts.URL, Token: config.NewSecret(token), Now: e.clk.Now})
				if err != nil {
					t.Fatal(err)
				}
			}
			in := crmhubspot.ContactInput{Email: "jenny@example.com"}
			var res []crmhubspot.ContactResult
			var err error
			if tt.name == "400" {
				// The client never sends a batch HubSpot rejects whole, so
				// take the 400 from property creation (an invalid name).
				err = client.EnsureProperties(context.Background(), []crmhubspot.Property{{Name: "Bad Name"}})
			} else {
				res, err = client.UpsertContacts(context.Background(), []crmhubspot.ContactInput{in})
				if err != nil && !errors.Is(res[0].Err, errors.Unwrap(err)) {
					t.Errorf("result error: got %v, want the batch's error", res[0].Err)
				}
			}
			if err == nil {
				t.Fatal("got nil error")
			}
			if got := errclass.Of(err); got != tt.wantClass {
				t.Errorf("class: got %v, want %v (%v)", got, tt.wantClass, err)
			}
			if got := errclass.RetryHint(err); got != tt.wantHint {
				t.Errorf("retry hint: got %v, want %v", got, tt.wantHint)
			}
			if s := err.Error(); strings.Contains(s, token) || strings.Contains(s, "jenny@example.com") {
				t.Errorf("error leaks the token or email: %v", s)
			}
		})
	}
}

func TestLimiterPausesBeforeWindowIsExhausted(t *testing.T) {
	t.Parallel()
	const limit = 10
	e := newEnv(t, hubspot.Options{TenSecondLimit: limit})
	const calls = 3*limit + 5
	for i := range calls {
		if _, err := e.client.UpsertContacts(context.Background(), []crmhubspot.ContactInput{{Email: fmt.Sprintf("u%d@example.com", i)}}); err != nil {
			t.Fatalf("call %d: %v (a 429 means the limiter let the window run out)", i, err)
		}
	}
	if got := e.srv.Requests()[hubspot.EndpointBatchUpsert]; got != calls {
		t.Errorf("requests: got %d, want %d (no 429s, no retries)", got, calls)
	}
	if got := len(e.srv.Contacts()); got != calls {
		t.Errorf("contacts: got %d, want %d", got, calls)
	}
	// 35 requests at 9 per window (10% reserve) need 3 waits of a window.
	if got, want := e.clk.Slept(), 3*hubspot.RateLimitInterval; got != want {
		t.Errorf("waited: got %v, want %v", got, want)
	}
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{TenSecondLimit: 2})
	c, err := crmhubspot.New(crmhubspot.Config{BaseURL: e.ts.URL, Token: config.NewSecret(token), Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpsertContacts(context.Background(), []crmhubspot.ContactInput{{Email: "a@example.com"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.UpsertContacts(ctx, []crmhubspot.ContactInput{{Email: "b@example.com"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want deadline exceeded while waiting for the window", err)
	}
	if got := e.srv.Requests()[hubspot.EndpointBatchUpsert]; got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

// A contact id in HubSpot's answer that is not a HubSpot object id (digits)
// is not taken: it would become identity's key for the contact and text in
// the console. The contact's result is an error, retried.
func TestUpsertRefusesAContactIDThatIsNotHubSpots(t *testing.T) {
	t.Parallel()
	for _, id := range []string{`<img src=x onerror=alert(1)>`, "", "123456789012345678901", "12 3"} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Inputs []struct {
					ID string `json:"id"`
				} `json:"inputs"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			var results []map[string]any
			for _, in := range body.Inputs {
				results = append(results, map[string]any{"id": id, "new": true, "properties": map[string]string{"email": in.ID}})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "COMPLETE", "results": results})
		}))
		client, err := crmhubspot.New(crmhubspot.Config{BaseURL: ts.URL, Token: config.NewSecret(token)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.UpsertContacts(context.Background(), []crmhubspot.ContactInput{{Email: "jenny@example.com"}})
		ts.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err == nil || res[0].ID != "" || errclass.Of(res[0].Err) == errclass.ClassPermanent {
			t.Errorf("contact id %q: result %+v; want a retried error and no id", id, res[0])
		}
	}
}
