package hubspot

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits HubSpot documents for the CRM v3 object APIs.
const (
	// MaxBatchInputs is the most inputs a batch endpoint accepts.
	MaxBatchInputs = 100
	// MaxSearchLimit is the largest page the search endpoint returns.
	MaxSearchLimit = 200
	// MaxSearchResults is how deep search paging can go (after + limit).
	MaxSearchResults = 10000
	// MaxUniqueProperties is how many custom properties of one object type
	// may have hasUniqueValue set.
	MaxUniqueProperties = 10
)

// Rate-limit defaults: the burst limit of a private app on a Free/Starter
// account (100 requests per rolling 10 seconds), that account's daily
// budget, and the search endpoints' own per-second limit.
const (
	DefaultTenSecondLimit       = 100
	DefaultDailyLimit           = 250000
	DefaultSearchPerSecondLimit = 5
	// RateLimitInterval is the rolling window of the burst limit, as
	// X-HubSpot-RateLimit-Interval-Milliseconds reports it.
	RateLimitInterval = 10 * time.Second
)

// DefaultPortalID is the account (hub) id quoted in validation messages when
// Options leaves it unset.
const DefaultPortalID = 20260101

// Endpoints as Requests counts them: the method and the route pattern.
// Requests to other paths are counted under their method and literal path.
const (
	EndpointBatchUpsert    = "POST /crm/v3/objects/contacts/batch/upsert"
	EndpointGetContact     = "GET /crm/v3/objects/contacts/{id}"
	EndpointSearch         = "POST /crm/v3/objects/contacts/search"
	EndpointCreateProperty = "POST /crm/v3/properties/contacts"
	EndpointListProperties = "GET /crm/v3/properties/contacts"
	EndpointGetProperty    = "GET /crm/v3/properties/contacts/{name}"
	EndpointCreateGroup    = "POST /crm/v3/properties/contacts/groups"
)

// Options configures a Server. The zero value is usable: any token that
// starts with "pat-" (a private-app token) with every scope, the real clock
// and HubSpot's default limits.
type Options struct {
	// Tokens maps each accepted bearer token to the scopes granted to it; a
	// nil scope list grants AllScopes. When Tokens is empty, any token
	// starting with "pat-" is accepted with every scope.
	Tokens map[string][]string
	// Now is the clock for timestamps, the rate limits and the search index
	// delay. Default time.Now. Tests pass a fake clock and advance it
	// instead of sleeping.
	Now func() time.Time
	// PortalID is the account id quoted in validation messages.
	// Default DefaultPortalID.
	PortalID int64

	// TenSecondLimit is the most requests in any rolling 10 seconds before
	// 429 TEN_SECONDLY_ROLLING. 0 means DefaultTenSecondLimit, negative
	// means no limit.
	TenSecondLimit int
	// PerSecondLimit is the most requests in any rolling second before 429
	// SECONDLY. 0 (the default) means no per-second limit: HubSpot
	// documents none for private apps apart from search.
	PerSecondLimit int
	// SearchPerSecondLimit is the search endpoint's own limit per rolling
	// second (429 SECONDLY). 0 means DefaultSearchPerSecondLimit, negative
	// means no limit.
	SearchPerSecondLimit int
	// DailyLimit is the daily budget before 429 DAILY; it resets at
	// midnight in Location. 0 means DefaultDailyLimit, negative means none.
	DailyLimit int
	// Location is the account's time zone, which decides when the daily
	// budget resets. Default UTC.
	Location *time.Location
	// RetryAfter adds a Retry-After header (whole seconds until the limit
	// frees a slot) to 429 answers. HubSpot does not promise one, so it is
	// off by default; a client must work without it.
	RetryAfter bool

	// MultiStatusNeedsTraceIDs makes batch upsert all-or-nothing unless every
	// input carries an objectWriteTraceId, as HubSpot documents for batch
	// create: one invalid input then fails the whole batch with 400 and
	// nothing is written. Off by default: invalid inputs fail alone (207).
	MultiStatusNeedsTraceIDs bool
	// SearchIndexDelay hides contacts created less than this long ago from
	// search, like HubSpot's search index lag. Default 0.
	SearchIndexDelay time.Duration

	// UniqueIDs starts record ids at Now's microseconds since the Unix epoch
	// (16 digits) instead of 10000000001, so an emulator that starts without
	// the state an earlier one kept (killed before it could save) never
	// hands out an id the earlier one did, unless that one created more than
	// a contact per microsecond it ran. `switchyard dev` sets it: the hub's
	// database outlives the emulator and links contacts by id. Off by
	// default, so tests see the same ids every run.
	UniqueIDs bool
}

// Server is the emulator: an http.Handler over an in-memory account.
type Server struct {
	now              func() time.Time
	portalID         int64
	retryAfter       bool
	needTraceIDs     bool
	searchIndexDelay time.Duration

	mu       sync.Mutex
	tokens   map[string]scopeSet // nil: any pat- token, all scopes
	store    store
	requests map[string]int
	faults   faults
	limits   limiter

	changes chan struct{} // see Changes
}

var _ http.Handler = (*Server)(nil)

// New returns a Server with HubSpot's default contact properties and groups
// and no contacts.
func New(opts Options) *Server {
	s := &Server{
		now:              opts.Now,
		portalID:         opts.PortalID,
		retryAfter:       opts.RetryAfter,
		needTraceIDs:     opts.MultiStatusNeedsTraceIDs,
		searchIndexDelay: opts.SearchIndexDelay,
		requests:         make(map[string]int),
		store:            newStore(),
		changes:          make(chan struct{}, 1),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.UniqueIDs {
		s.store.nextID = s.now().UnixMicro()
	}
	if s.portalID == 0 {
		s.portalID = DefaultPortalID
	}
	if len(opts.Tokens) > 0 {
		s.tokens = makeTokens(opts.Tokens)
	}
	s.limits = newLimiter(opts)
	return s
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, correlationID: newUUID(), now: s.now()}
	w.Header().Set("X-HubSpot-Correlation-Id", c.correlationID)

	rt := match(r.Method, r.URL.EscapedPath())
	s.count(rt.endpoint)

	if !s.wait(r.Context()) {
		return // the client is gone
	}
	if rt.public {
		// Introspection reads its token from the body, whatever the header.
		rt.handle(s, c, r, rt.param)
		return
	}
	scopes, ok := s.authenticate(r)
	if !ok {
		c.fail(http.StatusUnauthorized, authError())
		return
	}
	if status, ok := s.takeFault(); ok {
		s.injected(c, status)
		return
	}
	if d, limited := s.admit(c, rt.endpoint == EndpointSearch); limited {
		s.rateLimited(c, d)
		return
	}
	if rt.handle == nil {
		c.fail(rt.status, &apiError{Message: rt.message, Category: rt.category})
		return
	}
	if missing := scopes.lacks(rt.scopes); missing {
		c.fail(http.StatusForbidden, scopeError(rt.scopes))
		return
	}
	rt.handle(s, c, r, rt.param)
}

// route is what the path and method resolve to.
type route struct {
	endpoint string
	param    string   // {id} or {name}, unescaped
	scopes   []string // any one of them grants access
	handle   func(s *Server, c *call, r *http.Request, param string)
	// public routes authenticate themselves (token introspection reads
	// the token from the body): no header check, fault or rate limit.
	public bool
	// When handle is nil: the error answer.
	status   int
	message  string
	category string
}

func match(method, escapedPath string) route {
	segs := strings.Split(strings.Trim(escapedPath, "/"), "/")
	for i, seg := range segs {
		if u, err := url.PathUnescape(seg); err == nil {
			segs[i] = u
		}
	}
	path := "/" + strings.Join(segs, "/")
	notEmulated := func(pattern string) route {
		return route{
			endpoint: method + " " + pattern,
			status:   http.StatusNotImplemented,
			message:  fmt.Sprintf("hubspot emulator: %s %s is not emulated", method, pattern),
			category: "NOT_IMPLEMENTED",
		}
	}
	notFound := route{
		endpoint: method + " " + path,
		status:   http.StatusNotFound,
		message:  fmt.Sprintf("hubspot emulator: no such endpoint: %s %s", method, path),
		category: "OBJECT_NOT_FOUND",
	}
	if path == "/oauth/v2/private-apps/get/access-token-info" && method == http.MethodPost {
		return route{endpoint: EndpointTokenInfo, handle: (*Server).tokenInfo, public: true}
	}
	if len(segs) < 4 || segs[0] != "crm" || segs[1] != "v3" {
		return notFound
	}
	read := []string{ScopeContactsRead, ScopeContactsWrite}
	write := []string{ScopeContactsWrite}
	schemaRead := []string{ScopeSchemasRead, ScopeSchemasWrite, ScopeContactsRead, ScopeContactsWrite}
	schemaWrite := []string{ScopeSchemasWrite}

	switch {
	case segs[2] == "objects" && segs[3] == "contacts":
		rest := segs[4:]
		switch {
		case len(rest) == 0:
			return notEmulated("/crm/v3/objects/contacts")
		case len(rest) == 2 && rest[0] == "batch" && rest[1] == "upsert" && method == http.MethodPost:
			return route{endpoint: EndpointBatchUpsert, scopes: write, handle: (*Server).batchUpsert}
		case len(rest) == 2 && rest[0] == "batch":
			return notEmulated("/crm/v3/objects/contacts/batch/" + rest[1])
		case len(rest) == 1 && rest[0] == "search" && method == http.MethodPost:
			return route{endpoint: EndpointSearch, scopes: read, handle: (*Server).search}
		case len(rest) == 1 && rest[0] != "" && method == http.MethodGet:
			return route{endpoint: EndpointGetContact, param: rest[0], scopes: read, handle: (*Server).getContact}
		case len(rest) == 1 && rest[0] != "":
			return notEmulated("/crm/v3/objects/contacts/{id}")
		}
	case segs[2] == "properties" && segs[3] == "contacts":
		rest := segs[4:]
		switch {
		case len(rest) == 0 && method == http.MethodPost:
			return route{endpoint: EndpointCreateProperty, scopes: schemaWrite, handle: (*Server).createProperty}
		case len(rest) == 0 && method == http.MethodGet:
			return route{endpoint: EndpointListProperties, scopes: schemaRead, handle: (*Server).listProperties}
		case len(rest) == 1 && rest[0] == "groups" && method == http.MethodPost:
			return route{endpoint: EndpointCreateGroup, scopes: schemaWrite, handle: (*Server).createGroup}
		case len(rest) == 1 && rest[0] != "" && method == http.MethodGet:
			return route{endpoint: EndpointGetProperty, param: rest[0], scopes: schemaRead, handle: (*Server).getProperty}
		case len(rest) >= 1:
			return notEmulated("/crm/v3/properties/contacts/" + strings.Join(rest, "/"))
		}
	}
	return notFound
}

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[endpoint]++
}

// Requests reports how many requests each endpoint received (see the
// Endpoint constants), whatever their outcome: rejected, rate-limited and
// fault-injected requests count too, so a test can see a client's retries.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// wait sleeps the configured latency (real time, not Options.Now); false
// means the request's context ended first.
func (s *Server) wait(ctx context.Context) bool {
	s.mu.Lock()
	d := s.faults.latency
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

// apiError is HubSpot's error body. Every field but status and message is
// optional, as HubSpot says of its own errors.
type apiError struct {
	Status        string              `json:"status"`
	Message       string              `json:"message"`
	CorrelationID string              `json:"correlationId,omitempty"`
	Category      string              `json:"category,omitempty"`
	SubCategory   string              `json:"subCategory,omitempty"`
	Context       map[string][]string `json:"context,omitempty"`
	Errors        []errorDetail       `json:"errors,omitempty"`
	Links         map[string]string   `json:"links,omitempty"`
}

// errorDetail is one entry of an error body's errors array.
type errorDetail struct {
	Message string              `json:"message"`
	Code    string              `json:"code,omitempty"`
	In      string              `json:"in,omitempty"`
	Context map[string][]string `json:"context,omitempty"`
}

// Error categories HubSpot uses.
const (
	categoryValidation = "VALIDATION_ERROR"
	categoryNotFound   = "OBJECT_NOT_FOUND"
	categoryConflict   = "CONFLICT"
	categoryExists     = "OBJECT_ALREADY_EXISTS"
	categoryAuth       = "INVALID_AUTHENTICATION"
	categoryScopes     = "MISSING_SCOPES"
)

func validationError(format string, args ...any) *apiError {
	return &apiError{Message: fmt.Sprintf(format, args...), Category: categoryValidation}
}

// call carries one request's answer state.
type call struct {
	w             http.ResponseWriter
	correlationID string
	now           time.Time
}

func (c *call) fail(status int, e *apiError) {
	e.Status = "error"
	e.CorrelationID = c.correlationID
	c.json(status, e)
}

func (c *call) json(status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // cannot happen: plain data
		http.Error(c.w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json;charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

// decode reads a JSON request body strictly: unknown fields and trailing
// data are errors, as they are against HubSpot's published schemas. On
// failure it has answered 400.
func (c *call) decode(r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(c.w, r.Body, 8<<20))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = fmt.Errorf("unexpected data after the JSON value")
	}
	if err != nil {
		c.fail(http.StatusBadRequest, validationError("Invalid input JSON: %s", strings.TrimPrefix(err.Error(), "json: ")))
		return false
	}
	return true
}

// timestamp formats t the way HubSpot does: UTC, milliseconds, Z.
func timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// newUUID returns a random (version 4) UUID, the shape of HubSpot's
// correlation ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ceilSeconds is d in whole seconds, rounded up, at least 1.
func ceilSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
