package zendesk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	randv2 "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults used when Options leaves a field empty.
const (
	// DefaultEmail is the agent whose API token is accepted.
	DefaultEmail = "agent@switchyard.test"
	// DefaultAPIToken is the accepted API token.
	DefaultAPIToken = "emulator-api-token"
	// DefaultRateLimit is the account-wide budget in requests per minute:
	// the lowest documented plan limit (Support Team).
	DefaultRateLimit = 200
	// MaxPageSize is the largest page the ticket lists return, as Zendesk
	// documents for the tickets endpoints.
	MaxPageSize = 100
	// maxBody bounds a request body; real Zendesk rejects far smaller
	// payloads long before this.
	maxBody = 10 << 20
)

// Crash says what the emulator does after it stored a ticket created by
// POST /api/v2/tickets: answer normally, or fail the HTTP exchange although
// the ticket exists ("created but the client never heard").
type Crash int

const (
	// NoCrash answers 201 as usual.
	NoCrash Crash = iota
	// CrashDropConnection closes the connection without writing a response;
	// the client sees a transport error (EOF / connection reset).
	CrashDropConnection
	// CrashStatus500 answers 500 Internal Server Error.
	CrashStatus500
)

// Options configures a Server. The zero value is usable: DefaultEmail and
// DefaultAPIToken, the real clock, DefaultRateLimit, no groups and no agents
// besides the authenticating one.
type Options struct {
	// Email and APIToken are the credentials accepted, as
	// `Authorization: Basic base64("<Email>/token:<APIToken>")`. The email
	// compares case-insensitively, the token exactly. The agent with this
	// email is created when Agents does not list it.
	Email    string
	APIToken string
	// Forbidden makes authenticated requests answer 403, as Zendesk does for
	// an agent whose role lost API or ticket access.
	Forbidden bool
	// Now is the clock for timestamps and the per-minute rate limit window.
	// Default time.Now.
	Now func() time.Time
	// RateLimit is the account budget in requests per minute; 0 means
	// DefaultRateLimit, a negative value turns the limit (and its headers)
	// off.
	RateLimit int
	// BaseURL (e.g. "https://acme.zendesk.com") is used for ticket "url",
	// Location and pagination links. Default: the scheme and Host of each
	// request, so links point back at the emulator.
	BaseURL string
	// Groups and Agents are seeded at start. An agent's GroupIDs must name
	// seeded groups; its first group is its default group. Agent IDs must be
	// positive and unique; Role defaults to "agent".
	Groups []Group
	Agents []User
	// CrashAfterCreate, when set, is called with every ticket just created
	// through the API (after it is stored) and decides how the HTTP exchange
	// ends. CrashNextCreates takes precedence while its queue is not empty.
	CrashAfterCreate func(Ticket) Crash
	// UniqueIDs starts the ticket, user, comment and audit ids at Now's
	// microseconds since the Unix epoch (16 digits, still exact in a JSON
	// number) instead of 1 and 10001, so an emulator that starts without the
	// state an earlier one kept (killed before it could save) never hands
	// out an id the earlier one did, unless that one created more than one
	// record of a kind per microsecond it ran. `switchyard dev` sets it: the
	// hub's database outlives the emulator and links users and tickets by
	// id. Off by default, so tests see the same ids every run.
	UniqueIDs bool
}

// Server is the emulator: an http.Handler over an in-memory account. All
// methods are safe for concurrent use.
type Server struct {
	now     func() time.Time
	baseURL string

	mu        sync.Mutex
	email     string
	token     string
	forbidden bool

	users        map[int64]*User
	usersByEmail map[string]int64
	groups       map[int64]*Group
	tickets      map[int64]*Ticket
	nextTicket   int64
	nextUser     int64
	nextComment  int64
	nextAudit    int64

	requests []Request

	failures   []int
	latency    time.Duration
	flakyP     float64
	flakyRNG   *randv2.Rand
	retryAfter int // seconds, for injected 429s

	limit       int
	windowStart time.Time
	used        int

	crashHook  func(Ticket) Crash
	crashQueue []Crash

	changes chan struct{} // see Changes

	// The groups, users and tickets changed since the last MarshalChanges.
	dirtyGroups, dirtyUsers, dirtyTickets map[int64]struct{}
}

var _ http.Handler = (*Server)(nil)

// New returns a Server with the seeded groups and agents.
func New(opts Options) (*Server, error) {
	s := &Server{
		now:          opts.Now,
		baseURL:      strings.TrimRight(opts.BaseURL, "/"),
		email:        opts.Email,
		token:        opts.APIToken,
		forbidden:    opts.Forbidden,
		users:        make(map[int64]*User),
		usersByEmail: make(map[string]int64),
		groups:       make(map[int64]*Group),
		tickets:      make(map[int64]*Ticket),
		nextUser:     10001,
		retryAfter:   1,
		crashHook:    opts.CrashAfterCreate,
		changes:      make(chan struct{}, 1),
		dirtyGroups:  make(map[int64]struct{}),
		dirtyUsers:   make(map[int64]struct{}),
		dirtyTickets: make(map[int64]struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.UniqueIDs {
		// The counters hold the last id issued, except nextUser: the next.
		base := s.now().UnixMicro()
		s.nextTicket, s.nextComment, s.nextAudit, s.nextUser = base-1, base-1, base-1, base
	}
	if s.email == "" {
		s.email = DefaultEmail
	}
	if s.token == "" {
		s.token = DefaultAPIToken
	}
	switch {
	case opts.RateLimit == 0:
		s.limit = DefaultRateLimit
	case opts.RateLimit > 0:
		s.limit = opts.RateLimit
	}
	for _, g := range opts.Groups {
		if err := s.AddGroup(g); err != nil {
			return nil, err
		}
	}
	for _, a := range opts.Agents {
		if _, err := s.AddAgent(a); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.agentFor(s.email)
	s.mu.Unlock()
	return s, nil
}

// SetCredentials replaces the accepted agent email and API token (creating
// the agent if needed); requests with the old ones get 401 from now on.
func (s *Server) SetCredentials(email, apiToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.email, s.token = email, apiToken
	s.agentFor(email)
}

// SetForbidden makes authenticated requests answer 403 (true) or not.
func (s *Server) SetForbidden(forbidden bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forbidden = forbidden
}

// SetRateLimit sets the per-minute budget (0 or negative turns it off) and
// starts a fresh window.
func (s *Server) SetRateLimit(perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = max(perMinute, 0)
	s.used = 0
	s.windowStart = time.Time{}
}

// FailNext makes the next n authenticated requests answer status the way
// Zendesk does (429: plain-text body and Retry-After; 401/403/404/422: the
// JSON error bodies; 5xx: plain text, 503 with Retry-After). Nothing is
// changed by a failed request. Calls queue up in order.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, status)
	}
}

// FlakyRate makes each authenticated request, after any FailNext queue,
// fail with probability p with one of 500, 502, 503 or 429 (with
// Retry-After), drawn from a generator seeded with seed so a run is
// reproducible for the same request order. p <= 0 turns it off. Nothing is
// changed by a failed request.
func (s *Server) FlakyRate(p float64, seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flakyP = p
	s.flakyRNG = randv2.New(randv2.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// SetInjectedRetryAfter sets the Retry-After seconds (default 1, 0 allowed)
// of 429 and 503 answers injected by FailNext and FlakyRate. The real rate
// limiter computes its own.
func (s *Server) SetInjectedRetryAfter(seconds int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = max(seconds, 0)
}

// SetLatency delays every response by d (0 turns it off). The wait ends
// early when the client goes away.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// CrashNextCreates makes the next n successful ticket creations end with c
// (see Crash); the tickets are stored all the same.
func (s *Server) CrashNextCreates(n int, c Crash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.crashQueue = append(s.crashQueue, c)
	}
}

// SetCrashAfterCreate replaces Options.CrashAfterCreate (nil removes it).
func (s *Server) SetCrashAfterCreate(hook func(Ticket) Crash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crashHook = hook
}

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{r: r, s: s, now: s.now()}
	rec := &recorder{ResponseWriter: w, onHeader: c.record}
	c.w = rec
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	c.body = body
	// Exchanges that end without a response are logged with status 0.
	defer c.record(0)
	w.Header().Set("X-Request-Id", newRequestID())
	if err != nil {
		c.jsonError(http.StatusRequestEntityTooLarge, "RequestTooLarge", "The request body is too large")
		return
	}
	if !s.wait(r.Context()) {
		return // the client is gone
	}

	if isSelf(r) && r.Header.Get("Authorization") == "" {
		s.showSelf(c, true)
		return
	}
	agent, status := s.authenticate(r)
	if status != 0 {
		s.peekRateHeaders(w.Header(), c.now)
		if status == http.StatusForbidden {
			c.agent = agent
			c.forbidden()
			return
		}
		c.unauthorized()
		return
	}
	c.agent = agent

	if st, ok := s.takeFailure(); ok {
		s.peekRateHeaders(w.Header(), c.now)
		c.injected(st)
		return
	}
	if wait, limited := s.throttle(w.Header(), c.now); limited {
		c.rateLimited(wait)
		return
	}
	s.route(c)
}

// authenticate checks the Basic token credentials. status is 0 when the
// request may proceed, else 401 or 403.
func (s *Server) authenticate(r *http.Request) (User, int) {
	user, pass, ok := r.BasicAuth()
	email, isToken := strings.CutSuffix(user, "/token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || !isToken || !strings.EqualFold(email, s.email) || pass != s.token || pass == "" {
		return User{}, http.StatusUnauthorized
	}
	agent := s.agentFor(s.email)
	if s.forbidden {
		return agent.clone(), http.StatusForbidden
	}
	return agent.clone(), 0
}

// wait sleeps the configured latency; false means the request's context
// ended.
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

var flakyStatuses = []int{
	http.StatusInternalServerError, http.StatusBadGateway,
	http.StatusServiceUnavailable, http.StatusTooManyRequests,
}

func (s *Server) takeFailure() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		st := s.failures[0]
		s.failures = s.failures[1:]
		return st, true
	}
	if s.flakyP > 0 && s.flakyRNG != nil && s.flakyRNG.Float64() < s.flakyP {
		return flakyStatuses[s.flakyRNG.IntN(len(flakyStatuses))], true
	}
	return 0, false
}

// window advances the fixed one-minute window; the caller holds s.mu.
func (s *Server) window(now time.Time) time.Time {
	start := now.Truncate(time.Minute)
	if !start.Equal(s.windowStart) {
		s.windowStart, s.used = start, 0
	}
	return start
}

// throttle takes one request from the budget and sets the rate headers;
// when the budget is spent it reports how long until the window resets.
func (s *Server) throttle(h http.Header, now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit <= 0 {
		return 0, false
	}
	start := s.window(now)
	reset := start.Add(time.Minute).Sub(now)
	if s.used >= s.limit {
		setRateHeaders(h, s.limit, 0, reset)
		return reset, true
	}
	s.used++
	setRateHeaders(h, s.limit, s.limit-s.used, reset)
	return 0, false
}

// peekRateHeaders sets the rate headers without spending budget (requests
// that are not the account's, or that fail before reaching it).
func (s *Server) peekRateHeaders(h http.Header, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit <= 0 {
		return
	}
	start := s.window(now)
	setRateHeaders(h, s.limit, max(s.limit-s.used, 0), start.Add(time.Minute).Sub(now))
}

// setRateHeaders writes the account-wide headers Zendesk documents for every
// response, plus the ratelimit-* trio it adds on Ticketing API endpoints.
func setRateHeaders(h http.Header, limit, remaining int, reset time.Duration) {
	h.Set("X-Rate-Limit", strconv.Itoa(limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(remaining))
	h.Set("Ratelimit-Limit", strconv.Itoa(limit))
	h.Set("Ratelimit-Remaining", strconv.Itoa(remaining))
	h.Set("Ratelimit-Reset", strconv.Itoa(ceilSeconds(reset)))
}

func ceilSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// record appends the exchange to the request log, once, when its status is
// known: before the response goes out, so that a client that has its answer
// always finds the request in Requests.
func (c *call) record(status int) {
	if c.recorded {
		return
	}
	c.recorded = true
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.requests = append(c.s.requests, Request{
		Time:     c.now,
		Method:   c.r.Method,
		Path:     c.r.URL.Path,
		RawQuery: c.r.URL.RawQuery,
		Agent:    c.agent.Email,
		Body:     bytes.Clone(c.body),
		Status:   status,
	})
}

// recorder reports the status to onHeader before it is written.
type recorder struct {
	http.ResponseWriter
	onHeader func(status int)
	wrote    bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.wrote = true
		r.onHeader(status)
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// call carries one request's state.
type call struct {
	w        *recorder
	r        *http.Request
	s        *Server
	now      time.Time
	body     []byte
	agent    User
	recorded bool
}

// base is the scheme and host links are built on.
func (c *call) base() string {
	if c.s.baseURL != "" {
		return c.s.baseURL
	}
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host
}

func (c *call) writeJSON(status int, body []byte) {
	h := c.w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

func (c *call) writeText(status int, text string) {
	h := c.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(text)))
	c.w.WriteHeader(status)
	_, _ = io.WriteString(c.w, text)
}

// jsonError answers Zendesk's {"error":…,"description":…} body.
func (c *call) jsonError(status int, code, description string) {
	c.writeJSON(status, mustJSON(struct {
		Error       string `json:"error"`
		Description string `json:"description"`
	}{code, description}))
}

func (c *call) unauthorized() {
	c.writeJSON(http.StatusUnauthorized, []byte(`{"error":"Couldn't authenticate you"}`))
}

func (c *call) forbidden() {
	c.jsonError(http.StatusForbidden, "Forbidden",
		"You do not have access to this page. Please contact the account owner of this help desk for further help.")
}

func (c *call) notFound() {
	c.jsonError(http.StatusNotFound, "RecordNotFound", "Not found")
}

// rateLimitedBody is the plain-text body Zendesk's account limiter sends.
const rateLimitedBody = "Number of allowed API requests per minute exceeded"

func (c *call) rateLimited(wait time.Duration) {
	c.w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(wait)))
	c.writeText(http.StatusTooManyRequests, rateLimitedBody)
}

func (c *call) injected(status int) {
	c.s.mu.Lock()
	retry := strconv.Itoa(c.s.retryAfter)
	c.s.mu.Unlock()
	switch {
	case status == http.StatusTooManyRequests:
		c.w.Header().Set("Retry-After", retry)
		c.writeText(status, rateLimitedBody)
	case status == http.StatusUnauthorized:
		c.unauthorized()
	case status == http.StatusForbidden:
		c.forbidden()
	case status == http.StatusNotFound:
		c.notFound()
	case status == http.StatusUnprocessableEntity:
		c.recordInvalid(details{"base": {{Description: "zendesk emulator: injected validation failure", Error: "InvalidValue"}}})
	case status == http.StatusServiceUnavailable:
		c.w.Header().Set("Retry-After", retry)
		c.writeText(status, "Service Unavailable")
	case status >= 500:
		c.writeText(status, http.StatusText(status))
	default:
		c.jsonError(status, "InjectedFailure", fmt.Sprintf("zendesk emulator: injected failure (HTTP %d)", status))
	}
}

// dropConnection ends the exchange without a response.
func (c *call) dropConnection() {
	c.record(0)
	conn, _, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		// HTTP/2 and other writers that cannot be hijacked: the server
		// treats this sentinel panic as "abort the response" and resets the
		// stream without logging.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

var errNoTicketKey = errors.New(`param is missing or the value is empty: ticket`)
