package zendesk_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
)

const (
	agentEmail = "support-bot@acme.test"
	agentToken = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"
)

// t0 is 15 s into a minute, so the rate-limit window has 45 s left.
var t0 = time.Date(2026, 3, 1, 10, 0, 15, 0, time.UTC)

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

// Seeded account: two groups, three agents.
const (
	groupBilling = 360001
	groupRisk    = 360002
	agentAlice   = 9001 // billing
	agentBob     = 9002 // risk, billing
	agentCarol   = 9003 // no group
)

type env struct {
	srv   *zendesk.Server
	url   string
	clock *clock
}

// newEnv starts an emulator on httptest with the seeded account, closed when
// the test ends. Unset options default to the test credentials, the fake
// clock at t0 and no rate limit.
func newEnv(t *testing.T, opts zendesk.Options) *env {
	t.Helper()
	clk := &clock{t: t0}
	if opts.Email == "" {
		opts.Email, opts.APIToken = agentEmail, agentToken
	}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = -1
	}
	if opts.Groups == nil {
		opts.Groups = []zendesk.Group{{ID: groupBilling, Name: "Billing"}, {ID: groupRisk, Name: "Risk"}}
		opts.Agents = []zendesk.User{
			{ID: agentAlice, Name: "Alice", Email: "alice@acme.test", GroupIDs: []int64{groupBilling}},
			{ID: agentBob, Name: "Bob", Email: "bob@acme.test", GroupIDs: []int64{groupRisk, groupBilling}},
			{ID: agentCarol, Name: "Carol", Email: "carol@acme.test"},
		}
	}
	srv, err := zendesk.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{srv: srv, url: ts.URL, clock: clk}
}

func basic(email, token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(email+"/token:"+token))
}

var agentAuth = basic(agentEmail, agentToken)

type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request with the agent's credentials; body is JSON-encoded
// unless it is a string or []byte.
func (e *env) call(t *testing.T, method, path string, body any) response {
	t.Helper()
	return e.callAs(t, agentAuth, method, path, body)
}

func (e *env) callAs(t *testing.T, auth, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: raw}
}

// ticket is the subset of Zendesk's ticket JSON the tests read; pointers
// tell null from zero.
type ticket struct {
	ID           int64    `json:"id"`
	URL          string   `json:"url"`
	ExternalID   *string  `json:"external_id"`
	Subject      string   `json:"subject"`
	Description  string   `json:"description"`
	Priority     *string  `json:"priority"`
	Type         *string  `json:"type"`
	Status       string   `json:"status"`
	Tags         []string `json:"tags"`
	RequesterID  int64    `json:"requester_id"`
	SubmitterID  int64    `json:"submitter_id"`
	AssigneeID   *int64   `json:"assignee_id"`
	GroupID      *int64   `json:"group_id"`
	IsPublic     bool     `json:"is_public"`
	CreatedAt    string   `json:"created_at"`
	UpdatedAt    string   `json:"updated_at"`
	CustomFields []struct {
		ID    int64           `json:"id"`
		Value json.RawMessage `json:"value"`
	} `json:"custom_fields"`
}

func decode[T any](t *testing.T, r response, wantStatus int) T {
	t.Helper()
	if r.status != wantStatus {
		t.Fatalf("status %d, want %d: %s", r.status, wantStatus, r.body)
	}
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body: %v\n%s", err, r.body)
	}
	return v
}

// create posts a ticket and returns it; it fails the test unless 201.
func (e *env) create(t *testing.T, tk map[string]any) ticket {
	t.Helper()
	r := e.call(t, http.MethodPost, "/api/v2/tickets.json", map[string]any{"ticket": tk})
	return decode[struct {
		Ticket ticket `json:"ticket"`
	}](t, r, http.StatusCreated).Ticket
}

// minimal is the smallest valid create body, plus extra fields.
func minimal(extra map[string]any) map[string]any {
	tk := map[string]any{"subject": "Payment failed", "comment": map[string]any{"body": "Invoice in_123 failed."}}
	for k, v := range extra {
		tk[k] = v
	}
	return tk
}

type recordInvalid struct {
	Error       string                      `json:"error"`
	Description string                      `json:"description"`
	Details     map[string][]zendesk.Detail `json:"details"`
}

func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
