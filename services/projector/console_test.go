package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	commonv1 "github.com/switchyard/switchyard/proto/gen/switchyard/common/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
)

// consoleFixture is a running projector with one customer and one open
// failure: a consumer ("fulfilment") gave up on one of the customer's
// billing events and will succeed once healthy is set.
type consoleFixture struct {
	*hub
	healthy atomic.Bool
	handled atomic.Int32
	seq     uint64 // the failure's sequence in the DLQ stream
	email   string
}

func newConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	return newConsoleFixtureEnv(t, nil)
}

// newConsoleFixtureEnv is newConsoleFixture with extra settings for the
// projector.
func newConsoleFixtureEnv(t *testing.T, extra map[string]string) *consoleFixture {
	t.Helper()
	env := map[string]string{"JAEGER_UI_URL": "http://jaeger.example:16686"}
	for k, v := range extra {
		env[k] = v
	}
	f := &consoleFixture{hub: start(t, env), email: "user1@example.com"}
	msgs := lifegen.Generate(1, 1)
	f.publish(t, msgs...)
	testkit.WaitFor(t, 20*time.Second, "projected", f.settled(t))

	// A consumer of billing.> that fails permanently until healthy.
	pool, err := postgres.Open(context.Background(), testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := ledger.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(f.js, ledger.New(pool), consumer.Config{Name: "fulfilment", Stream: natsbus.StreamBilling,
		Subjects: []string{"billing.subscription.started"}, Create: true}, func(ctx context.Context, m *consumer.Message) error {
		if !f.healthy.Load() {
			return errclass.Permanent(errors.New("fulfilment: plan \"Basic\" is not set up in the provisioning service"))
		}
		f.handled.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	dlq, err := deadletter.Open(context.Background(), f.js)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the failure dead-lettered", func() bool {
		es, err := dlq.List(context.Background(), deadletter.Filter{Consumer: "fulfilment"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 1 {
			f.seq = es[0].Seq
		}
		return len(es) == 1
	})
	return f
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see every 303.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func (f *hub) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: f.api, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) (int, string, http.Header) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

func (b *browser) login(token string) {
	b.t.Helper()
	code, body, h := b.do(http.MethodPost, "/login", url.Values{"token": {token}, "next": {"/console/"}}, nil)
	if code != http.StatusSeeOther || h.Get("Location") != "/console/" {
		b.t.Fatalf("login: %d %s", code, body)
	}
	ck := h.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(ck, want) {
			b.t.Fatalf("session cookie %q lacks %s", ck, want)
		}
	}
}

var reCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	code, body, _ := b.do(http.MethodGet, path, nil, nil)
	m := reCSRF.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF token in the page", path, code)
	}
	return m[1]
}

func TestConsoleLoginAndPages(t *testing.T) {
	f := newConsoleFixture(t)
	b := f.browser(t)
	if code, _, h := b.do(http.MethodGet, "/console/failures", nil, nil); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login?next=") {
		t.Fatalf("anonymous GET: %d %s, want a redirect to the login page", code, h.Get("Location"))
	}
	if code, body, _ := b.do(http.MethodPost, "/login", url.Values{"token": {"not-a-token"}}, nil); code != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Fatalf("bad login: %d", code)
	}
	b.login(readToken)
	for path, want := range map[string]string{
		"/console/":                             "Open failures",
		"/console/failures":                     "plan &#34;Basic&#34; is not set up",
		"/console/customers/cust_000001":        "http://jaeger.example:16686/trace/",
		"/console/audit":                        "No manual actions yet",
		"/console/failures/" + itoa(f.seq):      "Dry-run replay",
		"/console/customers?q=" + "cust_000001": "", // redirect
	} {
		code, body, h := b.do(http.MethodGet, path, nil, nil)
		if want == "" {
			if code != http.StatusSeeOther || h.Get("Location") != "/console/customers/cust_000001" {
				t.Errorf("GET %s: %d → %s", path, code, h.Get("Location"))
			}
			continue
		}
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want a page with %q", path, code, want)
		}
	}
	for _, q := range []string{f.email, "cus_G000001"} {
		if code, _, h := b.do(http.MethodGet, "/console/customers?q="+url.QueryEscape(q), nil, nil); code != http.StatusSeeOther || h.Get("Location") != "/console/customers/cust_000001" {
			t.Errorf("search %s: %d → %s", q, code, h.Get("Location"))
		}
	}
	if code, _, _ := b.do(http.MethodGet, "/console/customers?q=nobody@example.com", nil, nil); code != http.StatusNotFound {
		t.Errorf("search for nobody: %d, want 404", code)
	}
}

// Every state-changing action refuses a missing or foreign CSRF token, a
// cross-site origin, a read-only session and no session; an operate
// session with its token succeeds.
func TestConsoleCSRFAndScopes(t *testing.T) {
	f := newConsoleFixture(t)
	reader, operator, other := f.browser(t), f.browser(t), f.browser(t)
	reader.login(readToken)
	operator.login(operateToken)
	other.login(operateToken)
	page := "/console/failures/" + itoa(f.seq)
	readerCSRF, operatorCSRF, otherCSRF := reader.csrf(page), operator.csrf(page), other.csrf(page)
	anonymous := f.browser(t)

	for _, action := range []string{"dry-run", "discard", "replay"} {
		path := page + "/" + action
		form := func(csrf string) url.Values {
			return url.Values{"csrf": {csrf}, "note": {"duplicate of an earlier failure"}}
		}
		for _, c := range []struct {
			name   string
			b      *browser
			form   url.Values
			header map[string]string
			want   int
		}{
			{"no session", anonymous, form(operatorCSRF), nil, http.StatusUnauthorized},
			{"no csrf", operator, form(""), nil, http.StatusForbidden},
			{"another session's csrf", operator, form(otherCSRF), nil, http.StatusForbidden},
			{"cross-site origin", operator, form(operatorCSRF), map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
			{"read scope", reader, form(readerCSRF), nil, http.StatusForbidden},
		} {
			if code, body, _ := c.b.do(http.MethodPost, path, c.form, c.header); code != c.want {
				t.Errorf("%s %s: %d, want %d\n%.300s", action, c.name, code, c.want, body)
			}
		}
		if _, err := deadletterGet(f, f.seq); err != nil {
			t.Fatalf("after refused %s attempts the failure must still be open: %v", action, err)
		}
	}
	// Now the operator does it for real: dry run changes nothing …
	code, body, _ := operator.do(http.MethodPost, page+"/dry-run", url.Values{"csrf": {operatorCSRF}}, nil)
	if code != http.StatusOK || !strings.Contains(body, "A replay will") || !strings.Contains(body, "Replay now") {
		t.Fatalf("dry run: %d %.400s", code, body)
	}
	if _, err := deadletterGet(f, f.seq); err != nil || f.handled.Load() != 0 {
		t.Fatalf("the dry run changed something: %v, handled %d", err, f.handled.Load())
	}
	// … the replay resolves it once the cause is fixed.
	f.healthy.Store(true)
	code, _, h := operator.do(http.MethodPost, page+"/replay", url.Values{"csrf": {operatorCSRF}}, nil)
	if code != http.StatusSeeOther || h.Get("Location") != page {
		t.Fatalf("replay: %d → %s", code, h.Get("Location"))
	}
	testkit.WaitFor(t, 20*time.Second, "the replayed message handled", func() bool { return f.handled.Load() == 1 })
	if _, err := deadletterGet(f, f.seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("dead letter after replay: %v, want removed", err)
	}
	code, body, _ = operator.do(http.MethodGet, page, nil, nil)
	if code != http.StatusOK || !strings.Contains(body, "resolved") || !strings.Contains(body, "founder") {
		t.Fatalf("resolved page: %d %.400s", code, body)
	}
	// Recorded and counted.
	var actor, action, result string
	if err := f.pool.QueryRow(context.Background(), `SELECT actor, action, result FROM ops_audit ORDER BY id DESC LIMIT 1`).Scan(&actor, &action, &result); err != nil {
		t.Fatal(err)
	}
	if actor != "founder" || action != "replay" || !strings.HasPrefix(result, "replayed to BILLING #") {
		t.Fatalf("audit = %s %s %s", actor, action, result)
	}
	if n := countAudit(t, f); n != 1 {
		t.Fatalf("%d audit records, want 1 (refused attempts are not actions)", n)
	}
}

func countAudit(t *testing.T, f *consoleFixture) int {
	t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM ops_audit`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func deadletterGet(f *consoleFixture, seq uint64) (deadletter.Entry, error) {
	dlq, err := deadletter.Open(context.Background(), f.js)
	if err != nil {
		return deadletter.Entry{}, err
	}
	return dlq.Get(context.Background(), seq)
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// Two operators (or tabs) resolving one failure at once: exactly one
// action happens and is recorded; the other is told it is resolved.
func TestConsoleConcurrentActions(t *testing.T) {
	f := newConsoleFixture(t)
	f.healthy.Store(true)
	a, b := f.browser(t), f.browser(t)
	a.login(operateToken)
	b.login(operateToken)
	page := "/console/failures/" + itoa(f.seq)
	csrfA, csrfB := a.csrf(page), b.csrf(page)
	codes := make(chan int, 2)
	go func() {
		code, _, _ := a.do(http.MethodPost, page+"/replay", url.Values{"csrf": {csrfA}}, nil)
		codes <- code
	}()
	go func() {
		code, _, _ := b.do(http.MethodPost, page+"/discard", url.Values{"csrf": {csrfB}, "note": {"duplicate"}}, nil)
		codes <- code
	}()
	c1, c2 := <-codes, <-codes
	if c1 == http.StatusInternalServerError || c2 == http.StatusInternalServerError {
		t.Fatalf("racing actions: %d and %d", c1, c2)
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM ops_audit WHERE result NOT LIKE 'failed%' AND result <> 'started'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || countAudit(t, f) != 1 {
		t.Fatalf("%d successful actions recorded (%d in all), want exactly 1", n, countAudit(t, f))
	}
}

// Logging out ends the session even for a copy of the cookie.
func TestConsoleLogoutRevokesSession(t *testing.T) {
	f := newConsoleFixture(t)
	b := f.browser(t)
	b.login(readToken)
	u, _ := url.Parse(f.api)
	cookies := b.c.Jar.Cookies(u)
	csrf := b.csrf("/console/")
	if code, _, _ := b.do(http.MethodPost, "/logout", url.Values{"csrf": {csrf}}, nil); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	thief := f.browser(t)
	thief.c.Jar.SetCookies(u, cookies)
	if code, _, h := thief.do(http.MethodGet, "/console/", nil, nil); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Fatalf("the logged-out cookie still works: %d %s", code, h.Get("Location"))
	}
}

// Without a connection as the operator's NATS identity, the console and
// the status API show dead letters but refuse to replay or discard them
// (503, naming the missing setting): the projector's own identity is never
// used instead, and nothing is done or audited.
func TestDeadLetterActionsNeedOperatorIdentity(t *testing.T) {
	f := newConsoleFixtureEnv(t, map[string]string{"OPS_NATS_PASSWORD": ""})
	f.healthy.Store(true)
	const want = "dead-letter actions need the operator's NATS identity (OPS_NATS_PASSWORD_FILE)"
	path := "/v1/dead-letters/" + itoa(f.seq)
	code, body := f.do(t, http.MethodPost, path+"/replay", operateToken)
	validateResponse(t, http.MethodPost, "/v1/dead-letters/{seq}/replay", code, body)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), want) || !strings.Contains(string(body), `"no_operator_identity"`) {
		t.Fatalf("API replay: %d %s, want 503 %q", code, body, want)
	}
	req, _ := http.NewRequest(http.MethodPost, f.api+path+"/discard", strings.NewReader(`{"note": "duplicate"}`))
	req.Header.Set("Authorization", "Bearer "+operateToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), want) {
		t.Fatalf("API discard: %d %s, want 503", resp.StatusCode, body)
	}
	b := f.browser(t)
	b.login(operateToken)
	page := "/console/failures/" + itoa(f.seq)
	csrf := b.csrf(page) // the failure still shows
	for _, action := range []string{"replay", "discard"} {
		code, body, _ := b.do(http.MethodPost, page+"/"+action, url.Values{"csrf": {csrf}, "note": {"duplicate"}}, nil)
		if code != http.StatusServiceUnavailable || !strings.Contains(html.UnescapeString(body), want) {
			t.Fatalf("console %s: %d %.400s, want 503", action, code, body)
		}
	}
	if _, err := deadletterGet(f, f.seq); err != nil || f.handled.Load() != 0 {
		t.Fatalf("dead letter after refused actions: %v, handled %d; want kept, unhandled", err, f.handled.Load())
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM ops_audit`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("audit rows: %d %v, want none", n, err)
	}
}

// The status API replays and discards dead letters for operate tokens,
// audited like the console's actions.
func TestAPIDeadLetterActions(t *testing.T) {
	f := newConsoleFixture(t)
	f.healthy.Store(true)
	path := "/v1/dead-letters/" + itoa(f.seq)
	if code, _ := f.do(t, http.MethodPost, path+"/replay", readToken); code != http.StatusForbidden {
		t.Fatalf("read token: %d, want 403", code)
	}
	req, _ := http.NewRequest(http.MethodPost, f.api+path+"/discard", strings.NewReader(`{"note": "  "}`))
	req.Header.Set("Authorization", "Bearer "+operateToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("discard without a note: %d, want 400", resp.StatusCode)
	}
	code, body := f.do(t, http.MethodPost, path+"/replay", operateToken)
	validateResponse(t, http.MethodPost, "/v1/dead-letters/{seq}/replay", code, body)
	if code != http.StatusOK || !strings.Contains(string(body), `"by":"founder"`) || !strings.Contains(string(body), "replayed to BILLING #") {
		t.Fatalf("replay: %d %s", code, body)
	}
	testkit.WaitFor(t, 20*time.Second, "the replayed message handled", func() bool { return f.handled.Load() == 1 })
	if code, body := f.do(t, http.MethodPost, path+"/replay", operateToken); code != http.StatusNotFound {
		t.Fatalf("second replay: %d %s, want 404", code, body)
	}
	var actor, action string
	if err := f.pool.QueryRow(context.Background(), `SELECT actor, action FROM ops_audit`).Scan(&actor, &action); err != nil || actor != "founder" || action != "replay" {
		t.Fatalf("audit: %s %s %v", actor, action, err)
	}
}

// TestLoginThrottlePerClientBehindProxy: ten failed logins in a minute lock
// out that client — even with the right token and a forged
// X-Forwarded-For — while another client behind the same trusted proxy
// still logs in.
func TestLoginThrottlePerClientBehindProxy(t *testing.T) {
	t.Parallel()
	f := &consoleFixture{hub: start(t, map[string]string{"OPS_TRUSTED_PROXIES": "127.0.0.1, ::1"})}
	attempt := func(token, forwardedFor string) int {
		t.Helper()
		code, _, _ := f.browser(t).do(http.MethodPost, "/login", url.Values{"token": {token}, "next": {"/console/"}},
			map[string]string{"X-Forwarded-For": forwardedFor})
		return code
	}
	for i := range 10 {
		if code := attempt("guess-"+strconv.Itoa(i), "203.0.113.7"); code != http.StatusUnauthorized {
			t.Fatalf("failed login %d: %d, want 401", i+1, code)
		}
	}
	if code := attempt(operateToken, "203.0.113.7"); code != http.StatusTooManyRequests {
		t.Errorf("the right token from a locked-out client: %d, want 429", code)
	}
	_, _, hdr := f.browser(t).do(http.MethodPost, "/login", url.Values{"token": {operateToken}, "next": {"/console/"}},
		map[string]string{"X-Forwarded-For": "203.0.113.7"})
	checkRetryAfter(t, "login 429", hdr)
	// The client puts another address in the header; the proxy appends the
	// one it heard from, which is what counts.
	if code := attempt(operateToken, "198.51.100.9, 203.0.113.7"); code != http.StatusTooManyRequests {
		t.Errorf("a forged X-Forwarded-For from a locked-out client: %d, want 429", code)
	}
	if code := attempt(operateToken, "198.51.100.9"); code != http.StatusSeeOther {
		t.Errorf("another client behind the same proxy: %d, want 303 (logged in)", code)
	}
}

// wantSecurityHeaders are on every console response: pages, the login form,
// redirects and errors.
var wantSecurityHeaders = map[string]string{
	"X-Frame-Options":        "DENY",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "same-origin", // not no-referrer: browsers would send Origin: null with the console's own forms
	"Cache-Control":          "no-store",
}

func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for k, want := range wantSecurityHeaders {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %s", what, csp, want)
		}
	}
}

// TestConsoleSecurityHeadersOnEveryRoute: the login page (where the token
// is typed), its answers, redirects, errors and every page carry the same
// security headers, logged in or not.
func TestConsoleSecurityHeadersOnEveryRoute(t *testing.T) {
	f := newConsoleFixture(t)
	failure := "/console/failures/" + itoa(f.seq)
	anonymous := f.browser(t)
	for _, c := range []struct {
		method, path string
		form         url.Values
		header       map[string]string
		want         int
	}{
		{"GET", "/", nil, nil, http.StatusSeeOther},
		{"GET", "/login", nil, nil, http.StatusOK},
		{"GET", "/login?next=%2Fconsole%2Ffailures", nil, nil, http.StatusOK},
		{"POST", "/login", url.Values{"token": {"not-a-token"}}, nil, http.StatusUnauthorized},
		{"POST", "/login", url.Values{"token": {operateToken}}, map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"POST", "/logout", url.Values{}, nil, http.StatusUnauthorized},
		{"GET", "/console", nil, nil, http.StatusSeeOther},
		{"GET", "/console/", nil, nil, http.StatusSeeOther},
		{"GET", "/console/failures", nil, nil, http.StatusSeeOther},
		{"GET", failure, nil, nil, http.StatusSeeOther},
		{"POST", failure + "/replay", url.Values{}, nil, http.StatusUnauthorized},
		{"GET", "/console/customers/cust_000001", nil, nil, http.StatusSeeOther},
		{"GET", "/console/audit", nil, nil, http.StatusSeeOther},
		{"GET", "/console/no-such-page", nil, nil, http.StatusSeeOther},
	} {
		code, _, h := anonymous.do(c.method, c.path, c.form, c.header)
		what := "anonymous " + c.method + " " + c.path
		if code != c.want {
			t.Errorf("%s: %d, want %d", what, code, c.want)
		}
		checkSecurityHeaders(t, what, h)
	}

	b := f.browser(t)
	code, _, h := b.do(http.MethodPost, "/login", url.Values{"token": {operateToken}, "next": {"/console/"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	checkSecurityHeaders(t, "POST /login (logged in)", h)
	csrf := b.csrf("/console/")
	for _, c := range []struct {
		method, path string
		form         url.Values
		want         int
	}{
		{"GET", "/console/", nil, http.StatusOK},
		{"GET", "/console/failures", nil, http.StatusOK},
		{"GET", "/console/failures?consumer=fulfilment&class=permanent", nil, http.StatusOK},
		{"GET", failure, nil, http.StatusOK},
		{"GET", "/console/failures/999999", nil, http.StatusNotFound},
		{"GET", "/console/failures/not-a-number", nil, http.StatusNotFound},
		{"POST", failure + "/dry-run", url.Values{"csrf": {csrf}}, http.StatusOK},
		{"POST", failure + "/replay", url.Values{}, http.StatusForbidden},
		{"POST", failure + "/discard", url.Values{"csrf": {csrf}}, http.StatusBadRequest},
		{"GET", "/console/customers", nil, http.StatusOK},
		{"GET", "/console/customers?q=cust_000001", nil, http.StatusSeeOther},
		{"GET", "/console/customers?q=nobody%40example.com", nil, http.StatusNotFound},
		{"GET", "/console/customers/cust_000001", nil, http.StatusOK},
		{"GET", "/console/customers/nobody", nil, http.StatusNotFound},
		{"GET", "/console/audit", nil, http.StatusOK},
		{"DELETE", "/console/", nil, http.StatusMethodNotAllowed},
		{"GET", "/console/no-such-page", nil, http.StatusNotFound},
		{"POST", "/logout", url.Values{"csrf": {csrf}}, http.StatusSeeOther},
	} {
		code, _, h := b.do(c.method, c.path, c.form, nil)
		what := "logged in " + c.method + " " + c.path
		if code != c.want {
			t.Errorf("%s: %d, want %d", what, code, c.want)
		}
		checkSecurityHeaders(t, what, h)
	}
	// The status API on the same address is not the console's: its JSON
	// answers keep their own headers.
	if _, _, h := anonymous.do(http.MethodGet, "/v1/openapi.json", nil, nil); h.Get("Content-Security-Policy") != "" {
		t.Errorf("the status API got the console's CSP: %q", h.Get("Content-Security-Policy"))
	}
}

// founderFixture is a running projector (Jaeger UI under a path, the
// gateway's metrics served) holding Ada's history — a failed payment whose
// CRM syncs came five times and whose ticket opened an hour later, after
// another event; a CRM failure whose cause the projection never saw — and
// dead letters about her (and about nobody) from identity and crm.
type founderFixture struct {
	*hub
	traces map[string]string // name → trace id
	seqs   map[string]uint64 // dead letter name → its sequence in the DLQ stream
	failed string            // the failed payment's event id
	later  string            // the event between the failure and its ticket
}

const (
	founderJaeger = "http://jaeger.example:16686/jaeger"
	// gatewayMetrics is the gateway's Prometheus text: two results
	// counted, the rest zero.
	gatewayMetrics = `# TYPE switchyard_gateway_webhooks_received_total counter
switchyard_gateway_webhooks_received_total{result="accepted"} 120
switchyard_gateway_webhooks_received_total{result="duplicate"} 0
switchyard_gateway_webhooks_received_total{result="signature_invalid"} 3
switchyard_gateway_webhooks_received_total{result="payload_too_large"} 0
switchyard_gateway_webhooks_received_total{result="invalid_json"} 0
switchyard_gateway_webhooks_received_total{result="store_unavailable"} 0
`
)

func newFounderFixture(t *testing.T) *founderFixture {
	t.Helper()
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, gatewayMetrics) }))
	t.Cleanup(gw.Close)
	f := &founderFixture{hub: start(t, map[string]string{"JAEGER_UI_URL": founderJaeger, "GATEWAY_METRICS_URL": gw.URL}),
		traces: map[string]string{}, seqs: map[string]uint64{}}
	for i, name := range []string{"upserted", "started", "failed", "later", "orphan", "dead-letter"} {
		f.traces[name] = fmt.Sprintf("%08x3577b34da6%014x", 0x4bf92f35+i, 0xa3ce929d0e4736+i)
	}
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	meta := func(subject, evt string, at time.Time) *billingv1.EventMeta {
		return &billingv1.EventMeta{EventId: subject + ":" + evt, CanonicalCustomerId: "cust_ada", SourceEventIds: []string{evt},
			OccurredAt: timestamppb.New(at), StripeCustomerId: "cus_Ada", Email: "ada@example.com"}
	}
	synced := func(id, cause string, at time.Time) *crmv1.ContactSynced {
		return &crmv1.ContactSynced{EventId: id, CanonicalCustomerId: "cust_ada", SourceEventId: cause, OccurredAt: timestamppb.New(at),
			ContactId: "hs_ada", Attempt: 1, Provider: "hubspot"}
	}
	upserted := meta(subjects.BillingCustomerUpserted, "evt_ada_1", t0)
	started := meta(subjects.BillingSubscriptionStarted, "evt_ada_2", t0.Add(10*time.Second))
	failedAt := t0.Add(20 * time.Minute)
	failed := meta(subjects.BillingPaymentFailed, "evt_ada_3", failedAt)
	later := meta(subjects.BillingCustomerUpserted, "evt_ada_4", t0.Add(40*time.Minute))
	f.failed, f.later = failed.GetEventId(), later.GetEventId()
	plan := &billingv1.Plan{PriceId: "price_pro", ProductName: "Pro", Quantity: 1, AmountPerInterval: 4900, Currency: "usd", Interval: billingv1.Interval_INTERVAL_MONTH, IntervalCount: 1, Mrr: 4900}
	payment := &billingv1.PaymentFailed{Meta: failed, InvoiceId: "in_ada", SubscriptionId: "sub_ada", Amount: 4900, Currency: "usd", AttemptCount: 1,
		NextPaymentAttempt: timestamppb.New(failedAt.AddDate(0, 0, 3)), DeclineCode: "insufficient_funds"}
	msgs := []lifegen.Msg{
		msg(t, &billingv1.CustomerUpserted{Meta: upserted, Email: "ada@example.com", Name: "Ada Lovelace", StripeCustomerIds: []string{"cus_Ada"}}, upserted.GetEventId(), f.traces["upserted"]),
		msg(t, synced("crm.contact.synced:upserted", upserted.GetEventId(), t0.Add(time.Second)), "crm.contact.synced:upserted", f.traces["upserted"]),
		msg(t, &billingv1.SubscriptionStarted{Meta: started, Subscription: &billingv1.Subscription{SubscriptionId: "sub_ada",
			Status: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE, Plan: plan}}, started.GetEventId(), f.traces["started"]),
		msg(t, synced("crm.contact.synced:started", started.GetEventId(), t0.Add(11*time.Second)), "crm.contact.synced:started", f.traces["started"]),
		msg(t, payment, failed.GetEventId(), f.traces["failed"]),
		msg(t, &billingv1.CustomerUpserted{Meta: later, Email: "ada@example.com", Name: "Ada King", StripeCustomerIds: []string{"cus_Ada"}}, later.GetEventId(), f.traces["later"]),
		msg(t, &supportv1.TicketOpened{EventId: "support.ticket.opened:failed", CanonicalCustomerId: "cust_ada", SourceEventId: failed.GetEventId(),
			OccurredAt: timestamppb.New(failedAt.Add(time.Hour)), Rule: "payment_failed", TicketId: "7001", Priority: supportv1.Priority_PRIORITY_HIGH,
			Provider: "zendesk", ExternalId: "switchyard:failed:payment_failed", Group: "Billing"}, "support.ticket.opened:failed", f.traces["failed"]),
		msg(t, &crmv1.ContactFailed{EventId: "crm.contact.failed:gone", CanonicalCustomerId: "cust_ada", SourceEventId: "billing.customer.upserted:evt_gone",
			OccurredAt: timestamppb.New(t0.Add(50 * time.Minute)), Attempt: 1, Provider: "hubspot", ErrorClass: commonv1.ErrorClass_ERROR_CLASS_PERMANENT,
			Reason: "hubspot: 400 VALIDATION_ERROR"}, "crm.contact.failed:gone", f.traces["orphan"]),
	}
	for i := 1; i <= 5; i++ { // the CRM synced the failure five times (redeliveries under a HubSpot outage)
		id := fmt.Sprintf("crm.contact.synced:failed:%d", i)
		msgs = append(msgs, msg(t, synced(id, failed.GetEventId(), failedAt.Add(time.Duration(i)*time.Second)), id, f.traces["failed"]))
	}
	f.publish(t, msgs...)
	testkit.WaitFor(t, 20*time.Second, "projected", f.settled(t))

	// Dead letters, as identity and crm publish them.
	paymentData, err := proto.Marshal(payment)
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := deadletter.Open(context.Background(), f.js)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name, consumer, subject, data string
		customer                      string // the envelope's customer_id
	}{
		// Identity gave up on the invoice's event, which names no customer
		// (customer: null), after publishing the failed payment.
		{"by-event", "identity", "stripe.events.invoice.payment_failed", `{"id":"evt_ada_3","type":"invoice.payment_failed","data":{"object":{"object":"invoice","id":"in_ada","customer":null}}}`, ""},
		// A refund the hub never saw, of a Stripe customer it knows.
		{"by-stripe-customer", "identity", "stripe.events.charge.refunded", `{"id":"evt_unseen","type":"charge.refunded","data":{"object":{"object":"charge","id":"ch_ada","customer":"cus_Ada"}}}`, ""},
		// A Stripe customer the projection has never heard of.
		{"unknown-stripe-customer", "identity", "stripe.events.customer.created", `{"id":"evt_stranger","type":"customer.created","data":{"object":{"object":"customer","id":"cus_Stranger"}}}`, ""},
		// A dispute names a charge, not a customer.
		{"nobody", "identity", "stripe.events.charge.dispute.created", `{"id":"evt_nobody","type":"charge.dispute.created","data":{"object":{"object":"dispute","id":"dp_1","charge":"ch_1"}}}`, ""},
		// CRM gave up on the failed payment itself.
		{"domain-event", "crm", subjects.BillingPaymentFailed, string(paymentData), ""},
		// Alerts knew the customer, but its copy of the message is not a
		// billing event: only the envelope names the customer.
		{"envelope-customer", "alerts", subjects.BillingPaymentFailed, "\xff\xff", "cust_ada"},
	} {
		h := nats.Header{}
		h.Set(wire.HeaderMsgID, d.name)
		h.Set("traceparent", "00-"+f.traces["dead-letter"]+"-00f067aa0ba902b7-01")
		dl := &consumer.DeadLetter{OriginalSubject: d.subject, OriginalHeaders: h, OriginalData: []byte(d.data), OriginalStream: "STRIPE", OriginalSeq: 1,
			Consumer: d.consumer, Class: errclass.ClassPermanent, Reason: "gave up: " + d.name, Attempts: 5, FirstFailureAt: t0, LastFailureAt: t0,
			CustomerID: d.customer}
		data, err := dl.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := f.js.PublishMsg(context.Background(), &nats.Msg{Subject: subjects.DLQ(d.consumer), Data: data, Header: nats.Header{wire.HeaderMsgID: {"dlq:" + d.name}}})
		if err != nil {
			t.Fatal(err)
		}
		f.seqs[d.name] = ack.Sequence
	}
	if es, err := dlq.List(context.Background(), deadletter.Filter{}, nil); err != nil || len(es) != len(f.seqs) {
		t.Fatalf("dead letters: %d, %v; want %d", len(es), err, len(f.seqs))
	}
	return f
}

// TestFailureLinksEnvelopeCustomer: a dead letter whose envelope names its
// customer links to that customer even though its message does not decode,
// in the failures list and on the failure's page.
func TestFailureLinksEnvelopeCustomer(t *testing.T) {
	t.Parallel()
	f := newFounderFixture(t)
	b := f.browser(t)
	b.login(readToken)
	seq := itoa(f.seqs["envelope-customer"])
	const want = `<a href="/console/customers/cust_ada">cust_ada</a>`

	code, body, _ := b.do(http.MethodGet, "/console/failures", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /console/failures: %d", code)
	}
	_, row, ok := strings.Cut(body, `<tr id="failure-`+seq+`">`)
	if !ok {
		t.Fatalf("failures list has no row for dead letter %s", seq)
	}
	row, _, _ = strings.Cut(row, "</tr>")
	if !strings.Contains(row, want) {
		t.Errorf("failures list row %s: %s\nwant it to contain %s", seq, row, want)
	}

	code, body, _ = b.do(http.MethodGet, "/console/failures/"+seq, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /console/failures/%s: %d", seq, code)
	}
	if got, wantCell := body, `<td id="customer">`+want+`</td>`; !strings.Contains(got, wantCell) {
		t.Errorf("failure page %s lacks %s", seq, wantCell)
	}
}

// TestOverviewSumsGatewayReplicas: with one metrics URL per gateway
// replica, the webhook figures are their sum; an unreachable replica is a
// problem named by its URL, not a silent undercount.
func TestOverviewSumsGatewayReplicas(t *testing.T) {
	t.Parallel()
	gw := func(body string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
		t.Cleanup(s.Close)
		return s.URL
	}
	other := gw(`switchyard_gateway_webhooks_received_total{result="accepted"} 30
switchyard_gateway_webhooks_received_total{result="signature_invalid"} 2
`)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	h := start(t, map[string]string{"GATEWAY_METRICS_URL": gw(gatewayMetrics) + ", " + other + "," + gone.URL})
	code, body := h.get(t, "/v1/status", readToken)
	var o struct {
		WebhookResults  map[string]int64 `json:"webhook_results"`
		WebhookFailures int64            `json:"webhook_failures"`
		Problems        []string         `json:"problems"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &o) != nil {
		t.Fatalf("status: %d %s", code, body)
	}
	if o.WebhookResults["accepted"] != 150 || o.WebhookResults["signature_invalid"] != 5 || o.WebhookFailures != 5 {
		t.Errorf("webhook figures %v (failures %d), want accepted 150 and signature_invalid 5 summed over the replicas", o.WebhookResults, o.WebhookFailures)
	}
	found := false
	for _, p := range o.Problems {
		found = found || strings.Contains(p, "gateway metrics at "+gone.URL)
	}
	if !found {
		t.Errorf("problems %q do not name the unreachable replica %s", o.Problems, gone.URL)
	}
}
