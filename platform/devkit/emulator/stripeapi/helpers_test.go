package stripeapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// Keys shaped like Stripe's (sk_test_ + 24 characters).
const (
	testKey       = "sk_test_51EmuLatorKeyAAAAbcd1234"
	restrictedKey = "rk_test_51EmuLatorKeyBBBBbcd5678"
	liveKey       = "sk_live_51EmuLatorKeyCCCCbcd9012"
)

// fixtureNow is one hour after the newest fixture event
// (customer.subscription.deleted, 1698256800), so every fixture is inside
// the 30-day window.
var fixtureNow = time.Unix(1698256800+3600, 0)

var requestIDPattern = regexp.MustCompile(`^req_[0-9A-Za-z]{14}$`)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newServer starts an emulator on httptest, closed when the test ends. Unset
// options default to the three test keys and fixtureNow.
func newServer(t *testing.T, opts stripeapi.Options) (*stripeapi.Server, string) {
	t.Helper()
	if opts.APIKeys == nil {
		opts.APIKeys = []string{testKey, restrictedKey, liveKey}
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixtureNow }
	}
	srv := stripeapi.New(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts.URL
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// get sends GET url with Bearer key (none when key is empty).
func get(t *testing.T, url, key string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

// stripeError is Stripe's error body.
type stripeError struct {
	Error struct {
		Type          string `json:"type"`
		Code          string `json:"code"`
		Message       string `json:"message"`
		Param         string `json:"param"`
		DocURL        string `json:"doc_url"`
		RequestLogURL string `json:"request_log_url"`
	} `json:"error"`
}

func decodeError(t *testing.T, r response) stripeError {
	t.Helper()
	var e stripeError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, r.body)
	}
	if e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("error body lacks type or message: %s", r.body)
	}
	return e
}

// eventList is Stripe's list envelope for events.
type eventList struct {
	Object  string            `json:"object"`
	URL     string            `json:"url"`
	HasMore bool              `json:"has_more"`
	Data    []json.RawMessage `json:"data"`
}

func (l eventList) ids(t *testing.T) []string {
	t.Helper()
	out := make([]string, len(l.Data))
	for i, raw := range l.Data {
		var e struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Object != "event" {
			t.Fatalf("list item is not an event (%v): %s", err, raw)
		}
		out[i] = e.ID
	}
	return out
}

func decodeList(t *testing.T, r response) eventList {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	var l eventList
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("list body: %v\n%s", err, r.body)
	}
	if l.Object != "list" || l.URL != "/v1/events" {
		t.Fatalf("envelope object=%q url=%q, want list and /v1/events", l.Object, l.URL)
	}
	return l
}

// fixtureEvent returns a fixture envelope and its id and data.object id.
func fixtureEvent(t *testing.T, name string) (raw []byte, id, objectID string) {
	t.Helper()
	raw = testkit.StripeEvent(t, name)
	var e struct {
		ID   string `json:"id"`
		Data struct {
			Object struct {
				ID string `json:"id"`
			} `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return raw, e.ID, e.Data.Object.ID
}

// syntheticEvent copies the invoice.paid fixture (a real envelope and
// invoice) under a new id, type, created and livemode.
func syntheticEvent(t *testing.T, id, typ string, created int64, livemode bool) []byte {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(testkit.StripeEvent(t, "invoice.paid"), &e); err != nil {
		t.Fatal(err)
	}
	e["id"], e["type"], e["created"], e["livemode"] = id, typ, created, livemode
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return string(gb) == string(wb)
}
