package stripeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAPIVersion is the account's default API version when Options leaves
// it empty: the version stripe-go v76 pins (stripe.APIVersion).
const DefaultAPIVersion = "2023-10-16"

// Stripe's documented default rate limits for the basic rate limiter, in
// requests per second per account and mode (docs.stripe.com/rate-limits).
const (
	DefaultLiveReadLimit = 100
	DefaultTestReadLimit = 25
)

// EventRetention is how far back events can be listed and retrieved.
const EventRetention = 30 * 24 * time.Hour

// Options configures a Server. The zero value is usable: any sk_test_/rk_test_
// key, the real clock, no rate limit.
type Options struct {
	// APIKeys are the secret (sk_…) and restricted (rk_…) keys accepted. A
	// key's mode comes from its prefix: sk_live_/rk_live_ are live mode,
	// every other key test mode. When empty, any key that starts with
	// sk_test_ or rk_test_ is accepted (as stripe-mock does).
	APIKeys []string
	// Now is the clock for the 30-day event window, the rate limiter and
	// request_log_url. Default time.Now.
	Now func() time.Time
	// APIVersion is what Stripe-Version says when a request sends none.
	// Default DefaultAPIVersion.
	APIVersion string
	// LiveReadLimit and TestReadLimit are requests per second allowed for
	// live-mode and test-mode keys before 429 rate_limit; 0 means no limit.
	// Stripe's defaults are DefaultLiveReadLimit and DefaultTestReadLimit.
	LiveReadLimit int
	TestReadLimit int
}

type mode int

const (
	modeTest mode = iota
	modeLive
)

func (m mode) String() string {
	if m == modeLive {
		return "live"
	}
	return "test"
}

// Server is the emulator: an http.Handler over an in-memory store.
type Server struct {
	now        func() time.Time
	apiVersion string
	keys       map[string]mode // nil: any sk_test_/rk_test_ key

	mu       sync.Mutex
	objects  map[string]map[string]*storedObject // kind → id → object
	events   map[string]*storedEvent
	seq      int64
	failures []int
	latency  time.Duration
	limits   [2]int
	buckets  [2]bucket
	requests []Request

	// What changed since MarshalChanges last ran, and its signal (see
	// state.go).
	dirtyObjects map[objectKey]bool
	dirtyEvents  map[string]bool
	changes      chan struct{}
	// registering serialises POST /_emulator/events, so two posts of one
	// event id cannot both find it absent.
	registering sync.Mutex
}

// Request is one request the emulator answered, as Requests reports it.
type Request struct {
	Method string
	Path   string // the URL path, without the query
	// Status is the answer's HTTP status; 0 when the client went away
	// before it (during SetLatency's wait).
	Status int
}

// Requests returns every request answered so far, oldest first, with or
// without a valid key, injected failures included: tests count what a
// client asked for (say, that a cache asked for a product once). The log
// lives as long as the Server.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

var _ http.Handler = (*Server)(nil)

// New returns an empty Server.
func New(opts Options) *Server {
	s := &Server{
		now:        opts.Now,
		apiVersion: opts.APIVersion,
		objects:    make(map[string]map[string]*storedObject),
		events:     make(map[string]*storedEvent),

		dirtyObjects: make(map[objectKey]bool),
		dirtyEvents:  make(map[string]bool),
		changes:      make(chan struct{}, 1),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.apiVersion == "" {
		s.apiVersion = DefaultAPIVersion
	}
	if len(opts.APIKeys) > 0 {
		s.keys = make(map[string]mode, len(opts.APIKeys))
		for _, k := range opts.APIKeys {
			s.keys[k] = keyMode(k)
		}
	}
	s.limits[modeLive] = max(opts.LiveReadLimit, 0)
	s.limits[modeTest] = max(opts.TestReadLimit, 0)
	return s
}

// FailNext makes the next n authenticated requests answer status with
// Stripe's error body for it (429: rate_limit with Retry-After; 5xx:
// api_error). Calls queue up: FailNext(1, 500) then FailNext(1, 429) fails one
// request with each, in that order.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, status)
	}
}

// SetLatency delays every response by d (0 turns it off). The wait ends early
// when the client goes away.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetRateLimit sets the per-second limit for both modes (0 turns it off) and
// refills the buckets. Use Options for different live and test limits.
func (s *Server) SetRateLimit(perSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = [2]int{max(perSecond, 0), max(perSecond, 0)}
	s.buckets = [2]bucket{}
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, reqID: newRequestID(), now: s.now()}
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Status: c.status})
	}()
	h := w.Header()
	h.Set("Request-Id", c.reqID)
	version := r.Header.Get("Stripe-Version")
	if version == "" {
		version = s.apiVersion
	}
	h.Set("Stripe-Version", version)

	if !s.wait(r.Context()) {
		return // the client is gone
	}

	m, authErr := s.authenticate(r)
	if authErr != nil {
		c.fail(http.StatusUnauthorized, authErr)
		return
	}
	c.mode, c.authed = m, true
	if r.URL.Path == EmulatorEventsPath {
		// The emulator's own control endpoint: no injected faults or rate
		// limits, which stand for Stripe's behaviour.
		s.registerEvent(c, r)
		return
	}
	if r.URL.Path == EmulatorObjectsPath {
		s.registerObject(c, r)
		return
	}

	if status, ok := s.takeFailure(); ok {
		s.injected(c, r, status)
		return
	}
	if wait, limited := s.throttle(m, c.now); limited {
		c.rateLimited(wait)
		return
	}
	if r.Header.Get("Stripe-Account") != "" {
		c.fail(http.StatusBadRequest, &apiError{
			Type:    typeInvalidRequest,
			Message: "stripeapi: the Stripe-Account header (Connect) is not emulated",
		})
		return
	}
	s.route(c, r)
}

// route dispatches on the path. Unknown paths get Stripe's 404; known paths
// with a method other than GET get 501, which Stripe never answers, so the
// gap is unmistakable.
func (s *Server) route(c *call, r *http.Request) {
	var segs []string
	for _, p := range strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/") {
		u, err := url.PathUnescape(p)
		if err != nil {
			u = p
		}
		segs = append(segs, u)
	}
	kind := ""
	switch {
	case len(segs) == 2 && segs[0] == "v1" && segs[1] == "events":
		kind = "list"
	case len(segs) == 2 && segs[0] == "v1" && segs[1] == "webhook_endpoints":
		kind = "list webhook endpoints"
	case len(segs) == 3 && segs[0] == "v1" && segs[2] != "":
		kind = collections[segs[1]]
	}
	if kind == "" {
		c.fail(http.StatusNotFound, &apiError{
			Type: typeInvalidRequest,
			Message: fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs "+
				"or we can help at https://support.stripe.com/.", r.Method, r.URL.Path),
		})
		return
	}
	if r.Method != http.MethodGet {
		// Stripe's own header: keeps stripe-go from retrying a DELETE.
		c.w.Header().Set("Stripe-Should-Retry", "false")
		c.fail(http.StatusNotImplemented, &apiError{
			Type:    typeAPI,
			Message: fmt.Sprintf("stripeapi: %s %s is not emulated; this emulator answers GET reads only", r.Method, r.URL.Path),
		})
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Message: "Invalid query string: " + err.Error()})
		return
	}
	switch kind {
	case "list":
		s.listEvents(c, q)
		return
	case "list webhook endpoints":
		s.listWebhookEndpoints(c, q)
		return
	}
	s.retrieve(c, kind, segs[2], q)
}

// collections maps URL collection names to Stripe object kinds.
var collections = map[string]string{
	"customers":         kindCustomer,
	"subscriptions":     kindSubscription,
	"invoices":          kindInvoice,
	"charges":           kindCharge,
	"payment_intents":   kindPaymentIntent,
	"products":          kindProduct,
	"events":            kindEvent,
	"webhook_endpoints": kindWebhookEndpoint,
}

func (s *Server) retrieve(c *call, kind, id string, q url.Values) {
	// A retrieve takes no parameters but expand, which is not emulated.
	if keys := sortedKeys(q); len(keys) > 0 {
		e := unsupported(keys[0])
		if e == nil {
			e = unknownParam(keys[0])
		}
		c.fail(http.StatusBadRequest, e)
		return
	}
	var (
		raw       json.RawMessage
		otherMode bool
	)
	if kind == kindEvent {
		raw, otherMode = s.lookupEvent(id, c.mode, c.now)
	} else {
		raw, otherMode = s.lookupObject(kind, id, c.mode)
	}
	if raw == nil {
		c.fail(http.StatusNotFound, noSuch(kind, id, "id", c.mode, otherMode))
		return
	}
	c.ok(raw)
}

func noSuch(kind, id, param string, m mode, otherMode bool) *apiError {
	msg := fmt.Sprintf("No such %s: '%s'", kind, id)
	if otherMode {
		other := modeLive
		if m == modeLive {
			other = modeTest
		}
		msg += fmt.Sprintf("; a similar object exists in %s mode, but a %s mode key was used to make this request.", other, m)
	}
	return &apiError{Type: typeInvalidRequest, Code: "resource_missing", Message: msg, Param: param}
}

// wait sleeps the configured latency; false means the request's context ended.
func (s *Server) wait(ctx context.Context) bool {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) takeFailure() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) == 0 {
		return 0, false
	}
	st := s.failures[0]
	s.failures = s.failures[1:]
	return st, true
}

func (s *Server) injected(c *call, r *http.Request, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		c.rateLimited(time.Second)
	case status == http.StatusUnauthorized:
		key, _ := requestKey(r)
		c.fail(status, &apiError{Type: typeInvalidRequest, Message: "Invalid API Key provided: " + maskKey(key)})
	case status >= 500:
		c.fail(status, &apiError{Type: typeAPI, Message: "An unknown error occurred"})
	default:
		c.fail(status, &apiError{Type: typeInvalidRequest, Message: fmt.Sprintf("stripeapi: injected failure (HTTP %d)", status)})
	}
}

// bucket is a token bucket holding one second's worth of requests, kept as
// GCRA (a theoretical arrival time) so that refills are exact in integer
// nanoseconds: each request costs time.Second/rate.
type bucket struct {
	tat time.Time
}

// throttle takes a token for mode m; when none is left it reports how long
// until one is.
func (s *Server) throttle(m mode, now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rate := s.limits[m]
	if rate <= 0 {
		return 0, false
	}
	b := &s.buckets[m]
	interval := time.Second / time.Duration(rate)
	burst := time.Duration(rate-1) * interval
	if b.tat.Before(now) {
		b.tat = now
	}
	if ahead := b.tat.Sub(now); ahead > burst {
		return ahead - burst, true
	}
	b.tat = b.tat.Add(interval)
	return 0, false
}

// call carries one request's answer state.
type call struct {
	w      http.ResponseWriter
	reqID  string
	now    time.Time
	mode   mode
	authed bool
	status int // the answer's, once written
}

// ok answers 200 with raw re-indented the way Stripe pretty-prints (key
// order and content unchanged).
func (c *call) ok(raw json.RawMessage) {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(raw), "", "  "); err != nil {
		c.write(http.StatusOK, raw) // stored JSON was validated; cannot happen
		return
	}
	c.write(http.StatusOK, b.Bytes())
}

func (c *call) fail(status int, e *apiError) {
	if e.Code != "" {
		e.DocURL = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(e.Code, "_", "-")
	}
	if c.authed {
		prefix := ""
		if c.mode == modeTest {
			prefix = "test/"
		}
		e.RequestLogURL = fmt.Sprintf("https://dashboard.stripe.com/%slogs/%s?t=%d", prefix, c.reqID, c.now.Unix())
	}
	body, err := json.MarshalIndent(struct {
		Error *apiError `json:"error"`
	}{e}, "", "  ")
	if err != nil { // cannot happen: strings only
		http.Error(c.w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.write(status, body)
}

func (c *call) rateLimited(wait time.Duration) {
	c.w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	c.fail(http.StatusTooManyRequests, &apiError{
		Type:    typeInvalidRequest,
		Code:    "rate_limit",
		Message: "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
	})
}

func (c *call) write(status int, body []byte) {
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	c.status = status
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
	_, _ = c.w.Write([]byte{'\n'})
}

const requestIDChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newRequestID returns an id shaped like Stripe's: req_ and 14 alphanumerics.
func newRequestID() string {
	b := make([]byte, 14)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = requestIDChars[int(b[i])%len(requestIDChars)]
	}
	return "req_" + string(b)
}
