package hubspot_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

// Tokens shaped like HubSpot private-app tokens.
const (
	token     = "pat-na1-0b7c5d1e-1111-4a2b-9c3d-000000000001"
	readToken = "pat-na1-0b7c5d1e-2222-4a2b-9c3d-000000000002"
)

// t0 is the fake clock's start: a Monday morning, UTC.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

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

// env is one emulator on httptest with its fake clock.
type env struct {
	srv  *hubspot.Server
	base string
	clk  *clock
}

// newEnv starts an emulator closed when the test ends. Unset options
// default to token (all scopes) and readToken (read scopes), a fake clock at
// t0, and no rate limits; rate-limit tests set the limits they test.
func newEnv(t *testing.T, opts hubspot.Options) *env {
	t.Helper()
	clk := &clock{t: t0}
	if opts.Tokens == nil {
		opts.Tokens = map[string][]string{
			token:     nil,
			readToken: {hubspot.ScopeContactsRead, hubspot.ScopeSchemasRead},
		}
	}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	if opts.TenSecondLimit == 0 {
		opts.TenSecondLimit = -1
	}
	if opts.SearchPerSecondLimit == 0 {
		opts.SearchPerSecondLimit = -1
	}
	srv := hubspot.New(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{srv: srv, base: ts.URL, clk: clk}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with Bearer tok (none when empty); body is JSON-encoded
// unless it is a string, which is sent as is.
func (e *env) do(t *testing.T, method, path, tok string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
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

func (e *env) get(t *testing.T, path string) response {
	t.Helper()
	return e.do(t, http.MethodGet, path, token, nil)
}

// in is one batch upsert input.
type in struct {
	IDProperty string         `json:"idProperty"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties"`
	TraceID    string         `json:"objectWriteTraceId,omitempty"`
}

// byEmail is an upsert input keyed by email.
func byEmail(email string, props map[string]any) in {
	if props == nil {
		props = map[string]any{}
	}
	return in{IDProperty: "email", ID: email, Properties: props}
}

func (e *env) upsert(t *testing.T, inputs ...in) response {
	t.Helper()
	return e.do(t, http.MethodPost, "/crm/v3/objects/contacts/batch/upsert", token, map[string]any{"inputs": inputs})
}

// object is HubSpot's SimplePublicObject.
type object struct {
	ID         string             `json:"id"`
	Properties map[string]*string `json:"properties"`
	CreatedAt  string             `json:"createdAt"`
	UpdatedAt  string             `json:"updatedAt"`
	Archived   *bool              `json:"archived"`
	New        *bool              `json:"new"`
}

func (o object) prop(name string) string {
	if v := o.Properties[name]; v != nil {
		return *v
	}
	return "<null>"
}

type detail struct {
	Message string              `json:"message"`
	Code    string              `json:"code"`
	In      string              `json:"in"`
	Context map[string][]string `json:"context"`
}

type batchError struct {
	Status   string              `json:"status"`
	Category string              `json:"category"`
	Message  string              `json:"message"`
	Context  map[string][]string `json:"context"`
	Errors   []detail            `json:"errors"`
}

type batchResponse struct {
	Status      string       `json:"status"`
	Results     []object     `json:"results"`
	NumErrors   int          `json:"numErrors"`
	Errors      []batchError `json:"errors"`
	StartedAt   string       `json:"startedAt"`
	CompletedAt string       `json:"completedAt"`
}

// hsError is HubSpot's error body (and, with errorType/policyName, its 429).
type hsError struct {
	Status        string              `json:"status"`
	Message       string              `json:"message"`
	CorrelationID string              `json:"correlationId"`
	Category      string              `json:"category"`
	Context       map[string][]string `json:"context"`
	Errors        []detail            `json:"errors"`
	Links         map[string]string   `json:"links"`
	ErrorType     string              `json:"errorType"`
	PolicyName    string              `json:"policyName"`
	RequestID     string              `json:"requestId"`
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("status %d, body is not the expected JSON (%v):\n%s", r.status, err, r.body)
	}
	return v
}

// wantStatus fails the test unless r has status.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// decodeError checks the common error-body fields and returns the body.
func decodeError(t *testing.T, r response, status int, category string) hsError {
	t.Helper()
	wantStatus(t, r, status)
	e := decode[hsError](t, r)
	if e.Status != "error" || e.Message == "" || e.Category != category {
		t.Errorf("error body status=%q category=%q message=%q, want error %s and a message", e.Status, e.Category, e.Message, category)
	}
	if !uuidPattern.MatchString(e.CorrelationID) || e.CorrelationID != r.header.Get("X-HubSpot-Correlation-Id") {
		t.Errorf("correlationId %q, header %q: want the same UUID", e.CorrelationID, r.header.Get("X-HubSpot-Correlation-Id"))
	}
	return e
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seedNumberProperty creates a custom number property.
func seedNumberProperty(t *testing.T, srv *hubspot.Server, name string, unique bool) {
	t.Helper()
	mustNoErr(t, srv.SeedProperty(hubspot.Property{Name: name, Label: name, Type: "number", FieldType: "number",
		GroupName: "contactinformation", HasUniqueValue: unique}))
}

// seedTextProperty creates a custom single-line text property.
func seedTextProperty(t *testing.T, srv *hubspot.Server, name string, unique bool) {
	t.Helper()
	mustNoErr(t, srv.SeedProperty(hubspot.Property{Name: name, Label: name, Type: "string", FieldType: "text",
		GroupName: "contactinformation", HasUniqueValue: unique}))
}

func readAll(t *testing.T, res *http.Response) []byte {
	t.Helper()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
