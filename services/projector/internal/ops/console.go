package ops

import (
	"context"
	"crypto/ed25519"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/ledger"
	moneyfmt "github.com/switchyard/switchyard/platform/money"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

//go:embed console/*.html
var consoleFS embed.FS

var consoleTmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"ago":  ago,
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"pct":  func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"secs": func(f float64) string {
		return time.Duration(f * float64(time.Second)).Round(time.Millisecond).String()
	},
	"money":            moneyfmt.Format,
	"severity":         stateSeverity,
	"statesBySeverity": statesBySeverity,
	"webhooks":         summarizeWebhooks,
}).ParseFS(consoleFS, "console/*.html"))

const sessionCookie = "switchyard_session"

// Console is the ops console: server-rendered pages on the ops address for
// a founder — pipeline health, failures with replay (dry run first) and
// discard, customer search with the cross-system timeline, and the audit
// log of manual actions. Logging in with an ops token gives a session
// cookie; every state-changing request carries the session's CSRF token,
// and only operate-scoped sessions may change anything.
type Console struct {
	store      *view.Store
	dlq        *deadletter.Store  // reads, as the projector
	ops        *deadletter.Store  // replays and discards, as the operator; nil: read-only
	opsNC      *nats.Conn         // the operator's connection: link commands; nil: read-only
	signKey    ed25519.PrivateKey // signs link commands (the replay signing key); nil: unsigned
	ledger     *ledger.Ledger
	js         jetstream.JetStream
	pool       *pgxpool.Pool
	tokens     opsauth.Tokens
	jaeger     string // JAEGER_UI_URL, "" = no trace links
	gatewayURL string // GATEWAY_METRICS_URL, "" = no webhook figures
	ttl        time.Duration
	log        *slog.Logger
	actions    metric.Int64Counter
	now        func() time.Time

	throttle *opsauth.Throttle // failed logins and API authentications, per client and per token
	proxies  []netip.Prefix    // trusted reverse proxies (X-Forwarded-For)

	rebuildFailed atomic.Pointer[string] // why the rebuild to ViewVersion at start failed

	overviewMu sync.Mutex
	overviewAt time.Time
	overviewV  Overview
}

// ConsoleConfig wires a Console.
type ConsoleConfig struct {
	Store     *view.Store
	JetStream jetstream.JetStream
	// Operator is a connection logged in as the operator's NATS identity:
	// dead letters are replayed and discarded on it, and on nothing else.
	// Nil, the console and the status API are read-only (ErrNoOperator).
	Operator          jetstream.JetStream
	Pool              *pgxpool.Pool
	Tokens            opsauth.Tokens
	JaegerURL         string
	GatewayMetricsURL string
	SessionTTL        time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (for the failed-login throttle and logs); from anyone
	// else the header is ignored, so it cannot be spoofed.
	TrustedProxies []netip.Prefix
	// ReplaySigningKey, if set, signs every replay made on Operator
	// (consumer.SignReplay), so consumers with its public key know it came
	// from an operator.
	ReplaySigningKey ed25519.PrivateKey
	Logger           *slog.Logger
	Meter            metric.MeterProvider
}

// NewConsole returns the console.
func NewConsole(ctx context.Context, c ConsoleConfig) (*Console, error) {
	dlq, err := deadletter.Open(ctx, c.JetStream)
	if err != nil {
		return nil, err
	}
	var ops *deadletter.Store
	if c.Operator != nil {
		if ops, err = deadletter.Open(ctx, c.Operator); err != nil {
			return nil, fmt.Errorf("as the operator: %w", err)
		}
		if c.ReplaySigningKey != nil {
			ops.SignReplaysWith(c.ReplaySigningKey)
		}
	}
	actions, err := c.Meter.Meter("github.com/switchyard/switchyard/services/projector").Int64Counter("switchyard_ops_manual_actions",
		metric.WithDescription("Manual interventions in the ops console and status API, by action (replay, discard, rebuild, link)"))
	if err != nil {
		return nil, err
	}
	for _, a := range []string{"replay", "discard", "rebuild", "link"} {
		actions.Add(ctx, 0, metric.WithAttributes(attribute.String("action", a)))
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	con := &Console{store: c.Store, dlq: dlq, ops: ops, ledger: ledger.New(c.Pool), js: c.JetStream, pool: c.Pool, tokens: c.Tokens,
		jaeger: strings.TrimRight(c.JaegerURL, "/"), gatewayURL: c.GatewayMetricsURL, ttl: c.SessionTTL, log: c.Logger,
		actions: actions, now: time.Now, proxies: c.TrustedProxies,
		// Failed logins and API authentications are counted by every
		// replica in PostgreSQL.
		throttle: opsauth.NewThrottle(authLimit, authWindow, nil).Shared(authFailures{pool: c.Pool, window: authWindow}, c.Tokens.ThrottleKey())}
	if c.Operator != nil {
		con.opsNC, con.signKey = c.Operator.Conn(), c.ReplaySigningKey
	}
	if err := con.instrumentDLQ(c.Meter); err != nil {
		return nil, err
	}
	return con, nil
}

// instrumentDLQ exports the open failures: switchyard_dlq_depth{class}
// and their total, switchyard_open_failures, and the DLQ's bytes against its
// bound (switchyard_dlq_bytes, switchyard_dlq_max_bytes), read at most
// every 15 s.
func (c *Console) instrumentDLQ(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/switchyard/switchyard/services/projector")
	depth, err := m.Int64ObservableGauge("switchyard_dlq_depth", metric.WithUnit("{message}"),
		metric.WithDescription("Open dead letters (failures waiting for a replay or a discard), by error class"))
	if err != nil {
		return err
	}
	open, err := m.Int64ObservableGauge("switchyard_open_failures", metric.WithUnit("{message}"),
		metric.WithDescription("Open dead letters in all"))
	if err != nil {
		return err
	}
	usedBytes, err := m.Int64ObservableGauge("switchyard_dlq_bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes the dead letters take in the DLQ stream"))
	if err != nil {
		return err
	}
	maxBytes, err := m.Int64ObservableGauge("switchyard_dlq_max_bytes", metric.WithUnit("By"),
		metric.WithDescription("The DLQ stream's size bound: when the dead letters reach it, new ones are refused and their messages retried"))
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var at time.Time
	byClass := map[string]int64{}
	var used, bound int64
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > 15*time.Second {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			entries, err := c.dlq.List(ctx, deadletter.Filter{}, nil)
			if err != nil {
				return nil // keep the last figures
			}
			byClass = map[string]int64{"transient": 0, "auth": 0, "permanent": 0, "unknown": 0}
			for _, e := range entries {
				byClass[e.Class.String()]++
			}
			if s, err := c.js.Stream(ctx, natsbus.StreamDLQ); err == nil {
				if info, err := s.Info(ctx); err == nil {
					used, bound = int64(info.State.Bytes), info.Config.MaxBytes
				}
			}
			at = time.Now()
		}
		if bound > 0 {
			o.ObserveInt64(usedBytes, used)
			o.ObserveInt64(maxBytes, bound)
		}
		var total int64
		for class, n := range byClass {
			o.ObserveInt64(depth, n, metric.WithAttributes(attribute.String("class", class)))
			total += n
		}
		if !at.IsZero() {
			o.ObserveInt64(open, total)
		}
		return nil
	}, depth, open, usedBytes, maxBytes)
	return err
}

// toConsole sends the bare address to the console.
func (c *Console) toConsole(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// notFound is the console's page for a path no route matches.
func (c *Console) notFound(req *request) { c.fail(req, http.StatusNotFound, "No such page.") }

// consoleCSP allows the pages' own inline styles and nothing else: no
// scripts at all, forms that post only here, no framing (clickjacking of
// the replay and discard buttons), no <base> to redirect relative links.
const consoleCSP = "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// withSecurityHeaders sets the console's security headers before h runs.
// Nothing the console serves is cacheable: pages show live state and
// carry the session's CSRF token. The referrer never leaves the console
// (same-origin, not no-referrer: under no-referrer browsers send
// "Origin: null" with the console's own form posts, which the login and
// the actions must then refuse as cross-site).
func withSecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", consoleCSP)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// request is what a page handler gets.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	session opsauth.Session
	who     opsauth.Principal
}

// page wraps a handler: a session is required (else to the login page);
// with operate the request changes state: operate scope and the CSRF token
// are required and the Origin, if sent, must be this host.
func (c *Console) page(operate bool, h func(*request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		var s opsauth.Session
		var p opsauth.Principal
		if err == nil {
			s, p, err = c.tokens.VerifySession(ck.Value, c.now())
		}
		if err == nil && time.Unix(s.Expires, 0).After(c.now().Add(c.ttl)) {
			err = opsauth.ErrSessionExpired // issued under a longer CONSOLE_SESSION_TTL
		}
		if err == nil {
			var revoked bool
			if qerr := c.pool.QueryRow(r.Context(), `SELECT EXISTS (SELECT 1 FROM ops_revoked_sessions WHERE id = $1)`, s.ID).Scan(&revoked); qerr != nil {
				c.log.ErrorContext(r.Context(), "check session revocation", "error", qerr)
				c.render(w, http.StatusServiceUnavailable, "error", map[string]any{"Title": "Unavailable", "Message": "The console cannot check your session right now; try again."})
				return
			}
			if revoked {
				err = opsauth.ErrNoSession
			}
		}
		if err != nil {
			if r.Method != http.MethodGet {
				c.render(w, http.StatusUnauthorized, "error", map[string]any{"Title": "Not logged in", "Message": "Your session ended. Log in again."})
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		req := &request{w: w, r: r, session: s, who: p}
		if operate {
			if err := r.ParseForm(); err != nil {
				c.fail(req, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
				c.fail(req, http.StatusForbidden, "Cross-site request refused.")
				return
			}
			if !c.tokens.CheckCSRF(s, r.PostForm.Get("csrf")) {
				c.fail(req, http.StatusForbidden, "The form expired or did not come from this console (CSRF check). Reload the page and try again.")
				return
			}
			if !p.Can(opsauth.ScopeOperate) {
				c.fail(req, http.StatusForbidden, "Your token can read but not operate: ask for an operate token to replay or discard.")
				return
			}
		}
		h(req)
	})
}

func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

func (c *Console) secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// data is what every page template gets.
func (c *Console) data(req *request, title string, extra map[string]any) map[string]any {
	d := map[string]any{"Title": title, "Who": req.who.Name, "Operate": req.who.Operate, "CSRF": c.tokens.CSRFToken(req.session)}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

func (c *Console) render(w http.ResponseWriter, code int, name string, data map[string]any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := consoleTmpl.ExecuteTemplate(w, name, data); err != nil {
		c.log.Error("render console page", "page", name, "error", err)
	}
}

func (c *Console) fail(req *request, code int, msg string) {
	c.render(req.w, code, "error", c.data(req, http.StatusText(code), map[string]any{"Message": msg}))
}

func (c *Console) internal(req *request, err error) {
	c.log.ErrorContext(req.r.Context(), "console request failed", "path", req.r.URL.Path, "error", err)
	c.fail(req, http.StatusInternalServerError, "Something went wrong; the projector's log has the details.")
}

// Login.

// Failed authentications — console logins and status API tokens alike,
// counted together — allowed per client address and per presented token in
// a window, before 429 (see opsauth.Throttle).
const (
	authLimit  = 10
	authWindow = time.Minute
)

// AllowAuth reports whether r may try to authenticate with token now (""
// when it presents none) and, when not, how long until it may. With
// FailedAuth it is the status API's AuthLimiter, so the API and the login
// form share one count per client — the client as OPS_TRUSTED_PROXIES
// makes it out — and per token.
func (c *Console) AllowAuth(r *http.Request, token string) (time.Duration, bool) {
	return c.throttle.Check(c.clientAddr(r), token)
}

// FailedAuth records that r failed to authenticate with token.
func (c *Console) FailedAuth(r *http.Request, token string) {
	c.throttle.Fail(c.clientAddr(r), token)
}

// retryAfter sets Retry-After to wait, in whole seconds.
func retryAfter(w http.ResponseWriter, wait time.Duration) int {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return secs
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "login", map[string]any{"Title": "Log in", "Next": safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		c.render(w, http.StatusForbidden, "login", map[string]any{"Title": "Log in", "Error": "Cross-site login refused."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		c.render(w, http.StatusBadRequest, "login", map[string]any{"Title": "Log in", "Error": "The form could not be read."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if wait, ok := c.AllowAuth(r, token); !ok {
		secs := retryAfter(w, wait)
		c.render(w, http.StatusTooManyRequests, "login", map[string]any{"Title": "Log in", "Next": next,
			"Error": "Too many failed attempts from here or with this token; try again in " + strconv.Itoa(secs) + " seconds."})
		return
	}
	p, ok := c.tokens.Lookup(token)
	if !ok {
		c.FailedAuth(r, token)
		c.log.WarnContext(r.Context(), "console login refused", "client", c.clientAddr(r))
		c.render(w, http.StatusUnauthorized, "login", map[string]any{"Title": "Log in", "Error": "That token is not valid.", "Next": next})
		return
	}
	_, value := c.tokens.NewSession(p, c.ttl, c.now())
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/", MaxAge: int(c.ttl.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(r)})
	c.log.InfoContext(r.Context(), "console login", "who", p.Name, "operate", p.Operate)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(req *request) {
	ctx := req.r.Context()
	if _, err := c.pool.Exec(ctx, `INSERT INTO ops_revoked_sessions (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`,
		req.session.ID, time.Unix(req.session.Expires, 0)); err != nil {
		c.internal(req, err)
		return
	}
	if _, err := c.pool.Exec(ctx, `DELETE FROM ops_revoked_sessions WHERE expires_at < now()`); err != nil {
		c.log.WarnContext(ctx, "prune revoked sessions", "error", err)
	}
	http.SetCookie(req.w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure(req.r)})
	http.Redirect(req.w, req.r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/console/"
	}
	return next
}

// clientAddr is the address of whoever sent r: the peer, or — when the
// peer is a trusted proxy — the last address in X-Forwarded-For that is not
// itself a trusted proxy (each proxy appends the address it heard from, so
// the addresses left of that one are the client's to invent).
func (c *Console) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !c.trusted(host) {
		return host
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, a := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(a))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := hopAddr(hops[i])
		if !ok {
			return host // a malformed chain: the proxy is the client we know
		}
		if !c.trusted(a.String()) {
			return a.String()
		}
		host = a.String()
	}
	return host
}

// hopAddr reads one X-Forwarded-For entry: an address, or an address and
// port as some proxies write it; zones and IPv4 mapping are dropped.
func hopAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap(), true
}

func (c *Console) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range c.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Overview.

func (c *Console) overview(req *request) {
	o := c.gatherOverview(req.r.Context())
	c.render(req.w, http.StatusOK, "overview", c.data(req, "Overview", map[string]any{"O": o}))
}

// Failures.

// failureRow is a dead letter as the console shows it.
type failureRow struct {
	deadletter.Entry
	Customer customerLink
	Class    string
	Traces   []traceRef // the failed message's trace
}

func (c *Console) row(ctx context.Context, customers *failureCustomers, e deadletter.Entry) failureRow {
	return failureRow{Entry: e, Customer: customers.of(ctx, e), Class: e.Class.String(),
		Traces: traceRefs(c.jaeger, view.TraceID(e.OriginalHeaders))}
}

func (c *Console) failuresPage(req *request) {
	q := req.r.URL.Query()
	f := deadletter.Filter{Consumer: q.Get("consumer"), Class: q.Get("class")}
	entries, err := c.dlq.List(req.r.Context(), f, nil)
	if err != nil {
		c.internal(req, err)
		return
	}
	rows := make([]failureRow, 0, len(entries))
	customers := c.failureCustomers()
	for i := len(entries) - 1; i >= 0; i-- { // newest first
		rows = append(rows, c.row(req.r.Context(), customers, entries[i]))
	}
	c.render(req.w, http.StatusOK, "failures", c.data(req, "Failures", map[string]any{"Rows": rows, "Filter": f}))
}

func (c *Console) entry(req *request) (deadletter.Entry, bool) {
	seq, err := strconv.ParseUint(req.r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		c.fail(req, http.StatusNotFound, "No such failure.")
		return deadletter.Entry{}, false
	}
	e, err := c.dlq.Get(req.r.Context(), seq)
	if errors.Is(err, deadletter.ErrNotFound) {
		// Resolved already: say how, from the audit log.
		a, aerr := c.lastAction(req.r.Context(), dlqTarget(seq))
		if aerr == nil && a != nil {
			c.render(req.w, http.StatusOK, "resolved", c.data(req, "Failure "+strconv.FormatUint(seq, 10), map[string]any{"Seq": seq, "A": a}))
		} else {
			c.fail(req, http.StatusNotFound, "Failure "+strconv.FormatUint(seq, 10)+" is not open (it was replayed or discarded).")
		}
		return deadletter.Entry{}, false
	}
	if err != nil {
		c.internal(req, err)
		return deadletter.Entry{}, false
	}
	return e, true
}

func (c *Console) failurePage(req *request) {
	e, ok := c.entry(req)
	if !ok {
		return
	}
	c.render(req.w, http.StatusOK, "failure", c.data(req, "Failure "+strconv.FormatUint(e.Seq, 10), map[string]any{"F": c.row(req.r.Context(), c.failureCustomers(), e)}))
}

func (c *Console) dryRun(req *request) {
	e, ok := c.entry(req)
	if !ok {
		return
	}
	plan := deadletter.PlanReplay(e)
	done, err := c.ledger.Done(req.r.Context(), e.Consumer, plan.ReplayOf)
	if err != nil {
		c.internal(req, err)
		return
	}
	c.render(req.w, http.StatusOK, "dryrun", c.data(req, "Dry run: replay failure "+strconv.FormatUint(e.Seq, 10),
		map[string]any{"F": c.row(req.r.Context(), c.failureCustomers(), e), "Plan": plan, "Done": done}))
}

func (c *Console) replay(req *request) {
	c.resolve(req, "replay", "", func(ctx context.Context, e deadletter.Entry) (string, error) {
		res, err := c.ops.Replay(ctx, e)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("replayed to %s #%d for %s", res.Stream, res.Sequence, e.Consumer), nil
	})
}

func (c *Console) discard(req *request) {
	note := strings.TrimSpace(req.r.PostForm.Get("note"))
	if note == "" {
		c.fail(req, http.StatusBadRequest, "Say why this failure needs no replay: a note is required to discard it.")
		return
	}
	c.resolve(req, "discard", note, func(ctx context.Context, e deadletter.Entry) (string, error) {
		return "discarded", c.ops.Discard(ctx, e)
	})
}

// resolve runs a replay or a discard from the console (see Resolve).
func (c *Console) resolve(req *request, action, note string, act func(context.Context, deadletter.Entry) (string, error)) {
	seq, err := strconv.ParseUint(req.r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		c.fail(req, http.StatusNotFound, "No such failure.")
		return
	}
	_, err = c.Resolve(req.r.Context(), req.who.Name, seq, action, note, act)
	switch {
	case errors.Is(err, ErrNoOperator):
		c.fail(req, http.StatusServiceUnavailable, ErrNoOperator.Error()+".")
	case errors.Is(err, deadletter.ErrNotFound):
		c.entry(req) // renders how it was resolved
	case err != nil:
		c.internal(req, err)
	default:
		http.Redirect(req.w, req.r, "/console/failures/"+strconv.FormatUint(seq, 10), http.StatusSeeOther)
	}
}

// Resolve runs a replay or a discard of dead letter seq for actor: one at
// a time per dead letter (across tabs, the API and replicas: a PostgreSQL
// advisory lock, and the dead letter read again under it, so the second of
// two racing actions gets deadletter.ErrNotFound), with the audit record
// written before acting ("started") and completed after, so no action goes
// unrecorded.
func (c *Console) Resolve(ctx context.Context, actor string, seq uint64, action, note string, act func(context.Context, deadletter.Entry) (string, error)) (string, error) {
	if c.ops == nil {
		return "", ErrNoOperator // never acted on as the projector
	}
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	lockKey := "dlq:" + strconv.FormatUint(seq, 10)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, lockKey); err != nil {
		return "", err
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey)
	}()
	e, err := c.dlq.Get(ctx, seq)
	if err != nil {
		return "", err
	}
	target := dlqTarget(e.Seq) + " (" + e.Consumer + ", " + e.OriginalMsgID + ")"
	id, err := c.auditStart(ctx, actor, action, target, note)
	if err != nil {
		return "", fmt.Errorf("audit record: %w (nothing was done)", err)
	}
	result, err := act(ctx, e)
	if err != nil {
		result = "failed: " + err.Error()
	}
	c.auditFinish(ctx, id, action, actor, target, result)
	return result, err
}

// Replay replays dead letter seq for actor (audited).
func (c *Console) Replay(ctx context.Context, actor string, seq uint64) (string, error) {
	return c.Resolve(ctx, actor, seq, "replay", "", func(ctx context.Context, e deadletter.Entry) (string, error) {
		res, err := c.ops.Replay(ctx, e)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("replayed to %s #%d for %s", res.Stream, res.Sequence, e.Consumer), nil
	})
}

// Discard discards dead letter seq for actor with a note (audited).
func (c *Console) Discard(ctx context.Context, actor string, seq uint64, note string) (string, error) {
	return c.Resolve(ctx, actor, seq, "discard", note, func(ctx context.Context, e deadletter.Entry) (string, error) {
		return "discarded", c.ops.Discard(ctx, e)
	})
}

// ErrNoOperator answers a replay or discard when no connection as the
// operator's NATS identity is configured: the projector's own identity may
// not replay or delete a dead letter, and is never used instead.
var ErrNoOperator = errors.New("dead-letter actions need the operator's NATS identity (OPS_NATS_PASSWORD_FILE)")

func dlqTarget(seq uint64) string { return "dlq " + strconv.FormatUint(seq, 10) }

// Audit.

// Action is one manual intervention.
type Action struct {
	At     time.Time
	Actor  string
	Action string
	Target string
	Note   string
	Result string
}

// auditStart records a manual action before it is taken.
func (c *Console) auditStart(ctx context.Context, actor, action, target, note string) (int64, error) {
	var id int64
	err := c.pool.QueryRow(ctx, `INSERT INTO ops_audit (actor, action, target, note, result) VALUES ($1, $2, $3, $4, 'started') RETURNING id`,
		actor, action, target, note).Scan(&id)
	return id, err
}

// auditFinish records the action's result and counts it.
func (c *Console) auditFinish(ctx context.Context, id int64, action, actor, target, result string) {
	ctx = context.WithoutCancel(ctx)
	c.actions.Add(ctx, 1, metric.WithAttributes(attribute.String("action", action)))
	if _, err := c.pool.Exec(ctx, `UPDATE ops_audit SET result = $2 WHERE id = $1`, id, result); err != nil {
		c.log.ErrorContext(ctx, "audit result not stored", "audit_id", id, "result", result, "error", err)
	}
	c.log.InfoContext(ctx, "manual action", "actor", actor, "action", action, "target", target, "result", result)
}

// Audit records an action taken outside the console (a rebuild through the
// status API) in the same log.
func (c *Console) Audit(ctx context.Context, actor, action, target string, do func() (string, error)) error {
	id, err := c.auditStart(ctx, actor, action, target, "")
	if err != nil {
		return fmt.Errorf("audit record: %w (nothing was done)", err)
	}
	result, err := do()
	if err != nil {
		result = "failed: " + err.Error()
	}
	c.auditFinish(ctx, id, action, actor, target, result)
	return err
}

func (c *Console) lastAction(ctx context.Context, targetPrefix string) (*Action, error) {
	var a Action
	err := c.pool.QueryRow(ctx, `SELECT at, actor, action, target, note, result FROM ops_audit
		WHERE target LIKE $1 || ' (%' ORDER BY at DESC, id DESC LIMIT 1`, targetPrefix).Scan(&a.At, &a.Actor, &a.Action, &a.Target, &a.Note, &a.Result)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return &a, err
}

func (c *Console) auditPage(req *request) {
	rows, err := c.pool.Query(req.r.Context(), `SELECT at, actor, action, target, note, result FROM ops_audit ORDER BY at DESC, id DESC LIMIT 200`)
	if err != nil {
		c.internal(req, err)
		return
	}
	actions, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Action, error) {
		var a Action
		return a, r.Scan(&a.At, &a.Actor, &a.Action, &a.Target, &a.Note, &a.Result)
	})
	if err != nil {
		c.internal(req, err)
		return
	}
	c.render(req.w, http.StatusOK, "audit", c.data(req, "Audit log", map[string]any{"Actions": actions}))
}

// Customers.

func (c *Console) search(req *request) {
	q := strings.TrimSpace(req.r.URL.Query().Get("q"))
	ctx := req.r.Context()
	var docs []json.RawMessage
	var err error
	switch {
	case q == "":
		c.render(req.w, http.StatusOK, "search", c.data(req, "Customers", nil))
		return
	case strings.HasPrefix(q, "evt_"):
		var id string
		id, err = c.store.CustomerOfStripeEvent(ctx, q)
		if err == nil {
			http.Redirect(req.w, req.r, "/console/customers/"+url.PathEscape(id), http.StatusSeeOther)
			return
		}
	case strings.HasPrefix(q, "cus_"):
		docs, err = c.store.FindByStripeID(ctx, q)
	case strings.Contains(q, "@"):
		docs, err = c.store.FindByEmail(ctx, q)
	default:
		var doc json.RawMessage
		doc, err = c.store.Customer(ctx, q)
		docs = []json.RawMessage{doc}
	}
	if errors.Is(err, view.ErrNotFound) || err == nil && len(docs) == 0 {
		c.render(req.w, http.StatusNotFound, "search", c.data(req, "Customers", map[string]any{"Q": q, "None": true}))
		return
	}
	if err != nil {
		c.internal(req, err)
		return
	}
	if len(docs) == 1 {
		var v view.View
		if err := json.Unmarshal(docs[0], &v); err != nil {
			c.internal(req, err)
			return
		}
		http.Redirect(req.w, req.r, "/console/customers/"+url.PathEscape(v.CustomerID), http.StatusSeeOther)
		return
	}
	views := make([]view.View, 0, len(docs))
	for _, d := range docs {
		var v view.View
		if err := json.Unmarshal(d, &v); err != nil {
			c.internal(req, err)
			return
		}
		views = append(views, v)
	}
	c.render(req.w, http.StatusOK, "search", c.data(req, "Customers", map[string]any{"Q": q, "Views": views}))
}

func (c *Console) customerPage(req *request) {
	ctx := req.r.Context()
	doc, err := c.store.Customer(ctx, req.r.PathValue("id"))
	if errors.Is(err, view.ErrNotFound) {
		c.fail(req, http.StatusNotFound, "No customer with this id.")
		return
	}
	if err != nil {
		c.internal(req, err)
		return
	}
	var v view.View
	if err := json.Unmarshal(doc, &v); err != nil {
		c.internal(req, err)
		return
	}
	page, err := c.store.Timeline(ctx, v.CustomerID, nil, maxTimelineLimit, true)
	if err != nil {
		c.internal(req, err)
		return
	}
	groups := groupTimeline(page.Entries)
	for i := range groups {
		g := &groups[i]
		g.Traces = traceRefs(c.jaeger, g.TraceIDs...)
		for j := range g.Effects {
			g.Effects[j].Traces = traceRefs(c.jaeger, g.Effects[j].TraceIDs...)
		}
	}
	c.render(req.w, http.StatusOK, "customer", c.data(req, v.Email+" "+v.CustomerID, map[string]any{"V": v, "Groups": groups, "More": page.Next != ""}))
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d ago"
}

// ParsePrefix reads a CIDR prefix or a single address (as its /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
