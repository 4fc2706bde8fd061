package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/pgcluster"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/crm"
)

// Issue 14, point 4 (dependency faults): how long a dependency is gone.
// SWITCHYARD_CHAOS_OUTAGE (a duration; `make chaos` sets 2m) lengthens
// both outages beyond CI's.
const (
	ciPostgresDowntime = 10 * time.Second
	ciHubSpotOutage    = 20 * time.Second
)

// chaosOutage is SWITCHYARD_CHAOS_OUTAGE, or ci when unset.
func chaosOutage(t *testing.T, ci time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv("SWITCHYARD_CHAOS_OUTAGE")
	if v == "" {
		return ci
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("SWITCHYARD_CHAOS_OUTAGE=%q: want a positive duration such as 2m", v)
	}
	return d
}

// faultRetryBudget is the consumers' retry policy for an outage of d:
// CONSUMER_BACKOFF 250ms,500ms,1s,2s,4s (the last repeats) and enough
// attempts (CONSUMER_MAX_ATTEMPTS) that a message failing from the first
// to the last moment of the outage, and once more while the dependency's
// clients reconnect, is still retried rather than dead-lettered: the
// budget is about twice the outage. The production default (1s, 5s, 30s,
// 2m, 10m over 6 attempts) rides out about 12½ minutes; the test's short
// steps make the backlog drain within 4s of the dependency's return.
func faultRetryBudget(d time.Duration) (backoff string, maxAttempts int, budget time.Duration) {
	steps := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	var head time.Duration
	for _, s := range steps[:len(steps)-1] {
		head += s
	}
	last := steps[len(steps)-1]
	// Failures after the head's: enough 4s steps to cover the outage twice.
	tail := int(math.Ceil(float64(2*d) / float64(last)))
	maxAttempts = min(len(steps)+tail, 100) // CONSUMER_MAX_ATTEMPTS allows 1..100
	budget = head + time.Duration(maxAttempts-len(steps))*last
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.String()
	}
	return strings.Join(names, ","), maxAttempts, budget
}

// faultHub is `switchyard dev` run in this process against the test's
// broker, database and vendor emulators.
type faultHub struct {
	ports    []int
	js       jetstream.JetStream
	secret   string
	opsToken string
	stderr   *lockedBuffer
	exited   chan int
}

func (h *faultHub) addr(i int) string { return "127.0.0.1:" + strconv.Itoa(h.ports[i]) }
func (h *faultHub) gateway() string   { return "http://" + h.addr(0) + "/webhooks/stripe" }
func (h *faultHub) ops() string       { return "http://" + h.addr(9) }

// readyz are the admin addresses' readiness URLs, by service.
func (h *faultHub) readyz() map[string]string {
	out := map[string]string{"gateway": "http://" + h.addr(10) + "/readyz"}
	for svc, i := range map[string]int{"identity": 1, "crm": 2, "support": 4, "alerts": 6, "projector": 8} {
		out[svc] = "http://" + h.addr(i) + "/readyz"
	}
	return out
}

// startFaultHub starts dev with env over the test's defaults and waits for
// its banner; it is stopped (and must exit 0) when the test ends.
func startFaultHub(t *testing.T, db string, hubAPI, zdAPI, slURL string, env map[string]string) *faultHub {
	t.Helper()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	h := &faultHub{ports: freePorts(t, 11), js: js, secret: "whsec_faults" + randomHex(16), stderr: &lockedBuffer{}, exited: make(chan int, 1)}
	operator := "ops:read+operate:" + randomHex(24)
	h.opsToken = strings.SplitN(operator, ":", 3)[2]
	base := map[string]string{
		"NATS_URL": b.URL, "DATABASE_URL": db, "STRIPE_WEBHOOK_SECRET": h.secret, "LOG_LEVEL": "warn",
		"HUBSPOT_TOKEN": "pat-faults-test", "HUBSPOT_BASE_URL": hubAPI,
		"ZENDESK_BASE_URL": zdAPI, "ZENDESK_EMAIL": devZendeskEmail, "ZENDESK_API_TOKEN": devZendeskToken,
		"SUPPORT_GROUPS":    "Billing=1,Customer Success=2",
		"SLACK_WEBHOOK_URL": slURL,
		"ALERTS_WINDOW":     "1s", "ALERTS_DIGEST_AT": "off",
		"SWITCHYARD_OPS_TOKENS": operator,
		"OPS_NATS_PASSWORD":     "operator-test", // this broker checks no passwords
	}
	for k, v := range env {
		base[k] = v
	}
	data := filepath.Join(t.TempDir(), "hub")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout lockedBuffer
	go func() {
		h.exited <- run(ctx, []string{"dev", "--data-dir", data, "--gateway-addr", h.addr(0), "--gateway-admin-addr", h.addr(10),
			"--identity-addr", h.addr(1), "--crm-addr", h.addr(2), "--hubspot-addr", h.addr(3), "--support-addr", h.addr(4), "--zendesk-addr", h.addr(5),
			"--alerts-addr", h.addr(6), "--slack-addr", h.addr(7), "--projector-addr", h.addr(8), "--ops-addr", h.addr(9)}, config.MapEnv(base), nil, &stdout, h.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-h.exited:
			if code != 0 {
				t.Errorf("switchyard dev exited %d:\n%s", code, logTail(h.stderr.String(), 60))
			}
		case <-time.After(60 * time.Second):
			t.Errorf("switchyard dev did not stop within 60s")
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hub log:\n%s", logTail(h.stderr.String(), 80))
		}
	})
	testkit.WaitFor(t, 60*time.Second, "the dev hub's banner", func() bool {
		h.checkRunning(t)
		return strings.Contains(stdout.String(), "Switchyard dev hub is running.")
	})
	return h
}

// checkRunning fails the test at once if dev has exited: a dependency's
// fault must never stop a service.
func (h *faultHub) checkRunning(t *testing.T) {
	t.Helper()
	select {
	case code := <-h.exited:
		h.exited <- code
		t.Fatalf("switchyard dev exited with %d while it should run:\n%s", code, logTail(h.stderr.String(), 60))
	default:
	}
}

// readiness polls every service's /readyz and records when each went
// false and when it came back.
type readiness struct {
	mu       sync.Mutex
	ready    map[string]bool
	downAt   map[string]time.Time // first not-ready answer
	upAt     map[string]time.Time // first ready answer after downAt
	flapped  map[string]int       // ready → not ready transitions
	lastBody map[string]string
}

func watchReadiness(ctx context.Context, urls map[string]string) *readiness {
	r := &readiness{ready: map[string]bool{}, downAt: map[string]time.Time{}, upAt: map[string]time.Time{}, flapped: map[string]int{}, lastBody: map[string]string{}}
	client := &http.Client{Timeout: 3 * time.Second}
	for svc := range urls {
		r.ready[svc] = true // waited for by dev before its banner (set before any watcher reads the map)
	}
	for svc, url := range urls {
		go func() {
			for ctx.Err() == nil {
				ok, body := false, ""
				if resp, err := client.Get(url); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					ok, body = resp.StatusCode == http.StatusOK, strings.TrimSpace(string(b))
				} else {
					body = err.Error()
				}
				now := time.Now()
				r.mu.Lock()
				switch {
				case !ok && r.ready[svc]:
					r.flapped[svc]++
					if _, seen := r.downAt[svc]; !seen {
						r.downAt[svc] = now
					}
					r.lastBody[svc] = body
				case ok && !r.ready[svc]:
					if _, seen := r.upAt[svc]; !seen {
						r.upAt[svc] = now
					}
				}
				r.ready[svc] = ok
				r.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	return r
}

// all reports whether every one of svcs is (ready) or is not (!ready).
func (r *readiness) all(svcs []string, ready bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, svc := range svcs {
		if r.ready[svc] != ready {
			return false
		}
	}
	return true
}

// TestPostgresRestartMidBurst is issue 14's "PostgreSQL restart mid-burst":
// `switchyard dev` in this process on a private PostgreSQL cluster the
// test owns takes a burst of 150 customers (customer.created with an
// email, a failed payment, the paid invoice: 450 webhooks from 8
// senders). A third of the way in, PostgreSQL is stopped (a fast
// shutdown: every connection is cut); the rest of the burst is posted
// while it is down, and every webhook still gets 200 (the gateway needs
// only JetStream). Every consuming service's /readyz must turn false
// (the gateway's stays true) and no service may exit; after the downtime
// PostgreSQL starts again on the same folder and port, every /readyz
// turns true again, and the backlog drains exactly once: STRIPE holds
// each event once, each customer has one view, synced to HubSpot, with
// its failed payment and its ticket once in its timeline, HubSpot one
// contact and Zendesk one ticket per customer, and nothing is
// dead-lettered — a lost database is transient, retried within the
// consumers' budget (faultRetryBudget), never a dead letter. It logs:
//
//	postgres restart: ... not_ready_window_ms=W ... drain_ms=D ...
func TestPostgresRestartMidBurst(t *testing.T) {
	const customers = 150
	start := time.Now()
	downtime := chaosOutage(t, ciPostgresDowntime)
	backoff, attempts, budget := faultRetryBudget(downtime)

	// A private cluster in a folder the postgres user can reach (the
	// tests may run as root), on a port it keeps across the restart.
	dir, err := os.MkdirTemp("", "switchyard-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pgDir := filepath.Join(dir, "data")
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := pgcluster.Start(context.Background(), pgDir, port, os.Getenv)
	if err != nil {
		t.Fatalf("a private PostgreSQL cluster (install the server binaries or set PG_BINDIR): %v", err)
	}
	var pgMu sync.Mutex
	t.Cleanup(func() {
		pgMu.Lock()
		defer pgMu.Unlock()
		if pg != nil {
			if err := pg.Stop(); err != nil {
				t.Error(err)
			}
		}
		_ = os.RemoveAll(dir)
	})

	hub := hubspotemu.New(hubspotemu.Options{TenSecondLimit: -1, SearchPerSecondLimit: -1})
	hubAPI := httptest.NewServer(hub)
	defer hubAPI.Close()
	zd, err := zendeskemu.New(zendeskemu.Options{Email: devZendeskEmail, APIToken: devZendeskToken, RateLimit: -1,
		Groups: []zendeskemu.Group{{ID: 1, Name: "Billing"}, {ID: 2, Name: "Customer Success"}}})
	if err != nil {
		t.Fatal(err)
	}
	zdAPI := httptest.NewServer(zd)
	defer zdAPI.Close()
	sl, err := slackemu.New(slackemu.Options{RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	slAPI := httptest.NewServer(sl)
	defer slAPI.Close()

	h := startFaultHub(t, pg.URL("postgres"), hubAPI.URL, zdAPI.URL, slAPI.URL+sl.Path(), map[string]string{
		"CONSUMER_BACKOFF": backoff, "CONSUMER_MAX_ATTEMPTS": strconv.Itoa(attempts),
	})
	t.Logf("hub up after %s; retry budget %s (CONSUMER_BACKOFF=%s, CONSUMER_MAX_ATTEMPTS=%d) for %s of downtime",
		time.Since(start).Round(time.Millisecond), budget, backoff, attempts, downtime)

	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	ready := watchReadiness(wctx, h.readyz())
	consumers := []string{"identity", "crm", "support", "alerts", "projector"}

	events, ids := killBurst(t, customers)
	post := poster(h.gateway(), h.secret)
	var failed atomic.Int64
	send := func(body []byte) {
		if err := post(body); err != nil && failed.Add(1) == 1 {
			t.Errorf("a webhook failed: %v", err)
		}
	}
	third := len(events) / 3
	burst(events[:third], send)

	// PostgreSQL goes away mid-burst; webhooks keep coming.
	stoppedAt := time.Now() // readiness may turn false before Stop returns
	pgMu.Lock()
	stopErr := pg.Stop()
	pg = nil
	pgMu.Unlock()
	if stopErr != nil {
		t.Fatalf("stop PostgreSQL: %v", stopErr)
	}
	stopTook := time.Since(stoppedAt)
	burst(events[third:], send)
	postedDown := time.Since(stoppedAt)
	if t.Failed() {
		t.FailNow() // a webhook refused while the database was away
	}
	testkit.WaitFor(t, 20*time.Second, "every consuming service not ready without PostgreSQL", func() bool {
		h.checkRunning(t)
		return ready.all(consumers, false)
	})
	for time.Since(stoppedAt) < downtime {
		h.checkRunning(t)
		time.Sleep(100 * time.Millisecond)
	}

	// Back on the same folder and port.
	pgMu.Lock()
	pg, err = pgcluster.Start(context.Background(), pgDir, port, os.Getenv)
	pgMu.Unlock()
	if err != nil {
		t.Fatalf("start PostgreSQL again: %v", err)
	}
	restartedAt := time.Now()
	testkit.WaitFor(t, 30*time.Second, "every service ready again", func() bool {
		h.checkRunning(t)
		return ready.all(slices.Concat(consumers, []string{"gateway"}), true)
	})
	readyAgain := time.Since(restartedAt)

	// Convergence: every customer synced to HubSpot with its ticket open.
	type view struct {
		ID  string `json:"id"`
		CRM struct {
			Status string `json:"status"`
		} `json:"crm"`
		States []string `json:"states"`
	}
	converged := func(vs []view) bool {
		return len(vs) == 1 && vs[0].CRM.Status == "synced" && slices.Contains(vs[0].States, "support ticket opened")
	}
	views := map[string][]view{}
	var behind string
	waitExplained(t, 60*time.Second, "every customer synced with its ticket open", func() bool {
		h.checkRunning(t)
		for _, id := range ids {
			if converged(views[id]) {
				continue
			}
			var res struct {
				Customers []view `json:"customers"`
			}
			if err := getJSON(h.ops()+"/v1/customers?stripe_customer_id="+id, h.opsToken, &res); err != nil {
				behind = id + ": " + err.Error()
				return false
			}
			views[id] = res.Customers
			if !converged(res.Customers) {
				behind = fmt.Sprintf("%s: %+v", id, res.Customers)
				return false
			}
		}
		return true
	}, func() string { return "the last customer behind: " + behind })
	converge := time.Since(restartedAt)
	behindAtConverge := busyConsumers(t, h.js)
	// The alerts service's consumers keep the default backoff (1s, 5s,
	// 30s, 2m, …: they do not read CONSUMER_BACKOFF), so a CRM retry
	// outcome that failed against the missing database three times waits
	// up to 30s — after a downtime over 36s, up to 2m — to be counted.
	idle := 60 * time.Second
	if downtime > 30*time.Second {
		idle = 3 * time.Minute
	}
	waitHubIdleFor(t, h.js, "PostgreSQL's restart", idle)
	drain := time.Since(restartedAt)
	stopWatch()

	// Readiness: every consuming service went false and came back; the
	// gateway, which needs no database, never went false.
	ready.mu.Lock()
	var window time.Duration
	var per []string
	for _, svc := range consumers {
		down, up := ready.downAt[svc], ready.upAt[svc]
		if down.IsZero() || up.IsZero() {
			t.Errorf("%s: readiness went false at %v and true again at %v; want both", svc, down, up)
			continue
		}
		window = max(window, up.Sub(stoppedAt))
		per = append(per, fmt.Sprintf("%s=%d..%d", svc, down.Sub(stoppedAt).Milliseconds(), up.Sub(stoppedAt).Milliseconds()))
		if ready.flapped[svc] != 1 {
			t.Errorf("%s: readiness went false %d times, want once", svc, ready.flapped[svc])
		}
		if !strings.Contains(ready.lastBody[svc], "postgres") {
			t.Errorf("%s: not ready for %q, want PostgreSQL named", svc, ready.lastBody[svc])
		}
	}
	if !ready.downAt["gateway"].IsZero() {
		t.Errorf("the gateway went not ready at +%s (%q); it needs no database", ready.downAt["gateway"].Sub(stoppedAt), ready.lastBody["gateway"])
	}
	ready.mu.Unlock()

	// Exactly once: each event stored once, nothing dead-lettered.
	for name, want := range map[string]uint64{natsbus.StreamStripe: uint64(len(events)), natsbus.StreamDLQ: 0} {
		s, err := h.js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if n := streamMsgs(t, s); n != want {
			t.Errorf("%s holds %d messages, want %d", name, n, want)
		}
	}
	for _, dl := range deadLetters(t, h.js) {
		t.Errorf("dead letter %d: %s of %s (%s, attempt %d): %s", dl.Sequence, dl.Consumer, dl.OriginalSubject, dl.Class, dl.Attempts, dl.Reason)
	}
	assertOnceEach(t, h, ids, func(id string) string {
		if v := views[id]; len(v) == 1 {
			return v[0].ID
		}
		return ""
	})
	assertVendorsOnce(t, hub, zd, ids)

	t.Logf("postgres restart: customers=%d webhooks=%d posted_while_down=%d posted_down_ms=%d stop_ms=%d downtime_ms=%d not_ready_ms=[%s] not_ready_window_ms=%d ready_after_restart_ms=%d converged_ms=%d busy_at_convergence=[%s] drain_ms=%d dead_letters=0 budget=%s took_ms=%d",
		customers, len(events), len(events)-third, postedDown.Milliseconds(), stopTook.Milliseconds(), restartedAt.Sub(stoppedAt).Milliseconds(), strings.Join(per, " "),
		window.Milliseconds(), readyAgain.Milliseconds(), converge.Milliseconds(), strings.Join(behindAtConverge, " "), drain.Milliseconds(), budget, time.Since(start).Milliseconds())
}

// assertOnceEach checks each customer's timeline through the status API:
// its failed payment and its ticket once. viewID gives the customer's
// view id ("" when it has none, reported by the convergence wait).
func assertOnceEach(t *testing.T, h *faultHub, ids []string, viewID func(string) string) {
	t.Helper()
	for _, id := range ids {
		vid := viewID(id)
		if vid == "" {
			t.Errorf("customer %s: no single view", id)
			continue
		}
		var page struct {
			Entries []struct {
				Subject string `json:"subject"`
			} `json:"entries"`
		}
		if err := getJSON(h.ops()+"/v1/customers/"+vid+"/timeline", h.opsToken, &page); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range page.Entries {
			seen[e.Subject]++
		}
		for _, s := range []string{subjects.BillingPaymentFailed, subjects.SupportTicketOpened} {
			if seen[s] != 1 {
				t.Errorf("customer %s: timeline holds %s %d times, want once: %v", id, s, seen[s], seen)
			}
		}
	}
}

// assertVendorsOnce checks one HubSpot contact and one Zendesk ticket per
// customer, and nothing else.
func assertVendorsOnce(t *testing.T, hub *hubspotemu.Server, zd *zendeskemu.Server, ids []string) {
	t.Helper()
	contacts, tickets := map[string]int{}, map[string]int{}
	for _, c := range hub.Contacts() {
		contacts[c.Properties["stripe_customer_id"]]++
	}
	for _, tk := range zd.Tickets() {
		if m := reStripeCustomer.FindStringSubmatch(tk.Description); m != nil {
			tickets[m[1]]++
		} else {
			t.Errorf("ticket %d (%.80q) names no Stripe customer", tk.ID, tk.Subject)
		}
	}
	for _, id := range ids {
		if contacts[id] != 1 || tickets[id] != 1 {
			t.Errorf("customer %s: %d HubSpot contacts and %d Zendesk tickets, want one each", id, contacts[id], tickets[id])
		}
	}
	if len(hub.Contacts()) != len(ids) || len(zd.Tickets()) != len(ids) {
		t.Errorf("HubSpot holds %d contacts and Zendesk %d tickets, want %d each", len(hub.Contacts()), len(zd.Tickets()), len(ids))
	}
}

// outageHubSpot is HubSpot behind an edge that answers every request with
// 503 while down, as the edge in front of HubSpot does when the API is
// out: an HTML page and no Retry-After (HubSpot does not promise one).
type outageHubSpot struct {
	next    http.Handler
	down    atomic.Bool
	refused atomic.Int64
}

func (o *outageHubSpot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !o.down.Load() {
		o.next.ServeHTTP(w, r)
		return
	}
	o.refused.Add(1)
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"+
		"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n")
}

// TestHubSpotOutage is issue 14's "HubSpot answering 503": `switchyard
// dev` in this process, HubSpot behind an edge that answers every request
// 503 for the outage (20s in CI, SWITCHYARD_CHAOS_OUTAGE under `make
// chaos`), while a burst of 100 customers' failed payments arrives
// (customer.created with an email and invoice.payment_failed). While it
// lasts, the console's overview (GET /v1/status) shows it: a "CRM sync is
// failing" problem, CRM retries counted (crm_retries_24h) and the crm
// consumer's backlog, and the problem is gone once it drained; Slack hears
// of it as a CRM retry storm — at least one alert, at most one per
// started minute of outage, not one per event. Afterwards the backlog
// drains: one HubSpot contact per customer, one Zendesk ticket per failed
// payment, nothing dead-lettered (503 is retryable and the outage is
// within the consumers' budget, faultRetryBudget). It logs:
//
//	hubspot outage: ... outage_ms=O refused=R ... drain_ms=D storm_alerts=S ...
func TestHubSpotOutage(t *testing.T) {
	const customers = 100
	start := time.Now()
	outage := chaosOutage(t, ciHubSpotOutage)
	chaos := os.Getenv("SWITCHYARD_CHAOS_OUTAGE") != ""
	backoff, attempts, budget := faultRetryBudget(outage)

	hub := hubspotemu.New(hubspotemu.Options{TenSecondLimit: -1, SearchPerSecondLimit: -1})
	edge := &outageHubSpot{next: hub}
	hubAPI := httptest.NewServer(edge)
	defer hubAPI.Close()
	zd, err := zendeskemu.New(zendeskemu.Options{Email: devZendeskEmail, APIToken: devZendeskToken, RateLimit: -1,
		Groups: []zendeskemu.Group{{ID: 1, Name: "Billing"}, {ID: 2, Name: "Customer Success"}}})
	if err != nil {
		t.Fatal(err)
	}
	zdAPI := httptest.NewServer(zd)
	defer zdAPI.Close()
	sl, err := slackemu.New(slackemu.Options{RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	slAPI := httptest.NewServer(sl)
	defer slAPI.Close()

	const stormThreshold = 20 // the default: CRM retries a minute that make a storm
	h := startFaultHub(t, testkit.Postgres(t), hubAPI.URL, zdAPI.URL, slAPI.URL+sl.Path(), map[string]string{
		"CONSUMER_BACKOFF": backoff, "CONSUMER_MAX_ATTEMPTS": strconv.Itoa(attempts),
		"ALERTS_STORM_THRESHOLD": strconv.Itoa(stormThreshold),
	})
	t.Logf("hub up after %s; retry budget %s (CONSUMER_BACKOFF=%s, CONSUMER_MAX_ATTEMPTS=%d) for %s of outage",
		time.Since(start).Round(time.Millisecond), budget, backoff, attempts, outage)

	lives := clusterLifecycles(t, customers)
	ids := make([]string, customers)
	var events [][]byte
	for i, l := range lives {
		ids[i] = clusterCustomerID(i)
		events = append(events, l[0], l[1])
	}

	// The outage begins; the burst arrives during it.
	edge.down.Store(true)
	outageStart := time.Now()
	post := poster(h.gateway(), h.secret)
	var failed atomic.Int64
	burst(events, func(body []byte) {
		if err := post(body); err != nil && failed.Add(1) == 1 {
			t.Errorf("a webhook failed: %v", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// What the console shows while it lasts.
	type lag struct {
		Stream      string `json:"stream"`
		Name        string `json:"name"`
		Pending     uint64 `json:"pending"`
		AckPending  int    `json:"ack_pending"`
		Redelivered int    `json:"redelivered"`
	}
	type overview struct {
		CRMSynced24h  int      `json:"crm_synced_24h"`
		CRMFailed24h  int      `json:"crm_failed_24h"`
		CRMRetries24h int      `json:"crm_retries_24h"`
		DLQTotal      int      `json:"dlq_total"`
		Consumers     []lag    `json:"consumers"`
		Problems      []string `json:"problems"`
		Healthy       bool     `json:"healthy"`
	}
	crmBacklog := func(o overview) (backlog uint64, redelivered int) {
		for _, c := range o.Consumers {
			if c.Name == crm.ConsumerName {
				return c.Pending + uint64(c.AckPending), c.Redelivered
			}
		}
		return 0, 0
	}
	var duringRetries, duringBacklog, duringRedelivered, healthyPolls, problemPolls, polls int
	var duringProblems []string
	var firstStorm time.Duration
	for time.Since(outageStart) < outage {
		h.checkRunning(t)
		var o overview
		if err := getJSON(h.ops()+"/v1/status", h.opsToken, &o); err != nil {
			t.Errorf("GET /v1/status during the outage: %v", err)
		} else {
			polls++
			backlog, redelivered := crmBacklog(o)
			duringRetries = max(duringRetries, o.CRMRetries24h)
			duringBacklog = max(duringBacklog, int(backlog))
			duringRedelivered = max(duringRedelivered, redelivered)
			if o.Healthy {
				healthyPolls++
			}
			if slices.ContainsFunc(o.Problems, isCRMOutage) {
				problemPolls++
				if duringProblems == nil {
					duringProblems = o.Problems // the first the overview listed
				}
			}
			if o.CRMSynced24h > 0 {
				t.Errorf("the overview shows %d CRM syncs while HubSpot answers only 503", o.CRMSynced24h)
			}
		}
		if firstStorm == 0 && len(stormAlerts(sl.Messages(), ":cyclone: CRM retry storm:")) > 0 {
			firstStorm = time.Since(outageStart)
		}
		time.Sleep(time.Second)
	}
	edge.down.Store(false)
	outageEnd := time.Now()
	refused := edge.refused.Load()
	if duringRetries == 0 {
		t.Errorf("the console's overview showed no CRM retry (crm_retries_24h) during a %s outage", outage)
	}
	// Since f025599 the overview names an ongoing vendor outage among its
	// problems (and is not healthy) while retries come and nothing syncs.
	if !slices.ContainsFunc(duringProblems, isCRMOutage) {
		t.Errorf("the console's overview never listed the CRM outage as a problem during a %s outage (%d polls, %d healthy; first problems %q)", outage, polls, healthyPolls, duringProblems)
	}
	if duringBacklog == 0 {
		t.Errorf("the console's overview showed no crm backlog (pending + ack pending) during a %s outage", outage)
	}
	if refused == 0 {
		t.Fatalf("HubSpot refused no request during the outage: the test proves nothing")
	}

	// The backlog drains.
	synced := func() (int, string) {
		n, behind := 0, ""
		for _, id := range ids {
			if c, ok := hub.ContactByEmail(emailOf(id)); ok && c.Properties["stripe_customer_id"] == id {
				n++
			} else if behind == "" {
				behind = id
			}
		}
		return n, behind
	}
	waitExplained(t, 60*time.Second, "every customer's contact in HubSpot after the outage", func() bool {
		h.checkRunning(t)
		n, _ := synced()
		return n == customers
	}, func() string {
		n, b := synced()
		return fmt.Sprintf("%d of %d synced; first missing %s", n, customers, b)
	})
	contactsDrain := time.Since(outageEnd)
	waitHubIdleFor(t, h.js, "the HubSpot outage", 60*time.Second)
	drain := time.Since(outageEnd)

	// Exactly once, nothing dead-lettered.
	for _, dl := range deadLetters(t, h.js) {
		t.Errorf("dead letter %d: %s of %s (%s, attempt %d): %s", dl.Sequence, dl.Consumer, dl.OriginalSubject, dl.Class, dl.Attempts, dl.Reason)
	}
	s, err := h.js.Stream(context.Background(), natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, s); n != uint64(len(events)) {
		t.Errorf("STRIPE holds %d messages, want %d", n, len(events))
	}
	assertVendorsOnce(t, hub, zd, ids)

	// The console after the outage: the retries counted, every sync done,
	// no backlog, no open failure, the outage no longer a problem.
	var after overview
	waitExplained(t, 20*time.Second, "the overview shows every sync and no backlog", func() bool {
		after = overview{}
		if err := getJSON(h.ops()+"/v1/status", h.opsToken, &after); err != nil {
			return false
		}
		backlog, _ := crmBacklog(after)
		return after.CRMSynced24h >= customers && backlog == 0 && !slices.ContainsFunc(after.Problems, isCRMOutage)
	}, func() string { return fmt.Sprintf("last overview: %+v", after) })
	if after.DLQTotal != 0 || after.CRMFailed24h != 0 || after.CRMRetries24h < duringRetries {
		t.Errorf("after the outage the overview shows dlq_total %d, crm_failed_24h %d, crm_retries_24h %d; want 0, 0 and at least the %d seen during it",
			after.DLQTotal, after.CRMFailed24h, after.CRMRetries24h, duringRetries)
	}

	// Slack: the outage as a storm, not one alert per event. Under `make
	// chaos` the test also waits for the storm's end (a minute below the
	// threshold after the last retry, checked every 10s).
	over := ":white_check_mark: CRM retry storm over"
	if chaos {
		testkit.WaitFor(t, 3*time.Minute, "the storm-over message", func() bool {
			return len(stormAlerts(sl.Messages(), over)) > 0
		})
	}
	storms := stormAlerts(sl.Messages(), ":cyclone: CRM retry storm:")
	reminders := stormAlerts(sl.Messages(), ":cyclone: CRM retry storm still under way")
	overs := stormAlerts(sl.Messages(), over)
	minutes := int(math.Ceil(outage.Minutes()))
	if len(storms) == 0 {
		t.Errorf("no CRM retry storm alert in Slack for a %s outage (%d messages)", outage, len(sl.Messages()))
	}
	// Observed since the alerts service's one-alert-per-storm change
	// (d350755): exactly 1 storm alert for the 20s outage and for 2m, with
	// one "storm over" once a minute passes below the threshold. Before
	// it, one a minute while retries exceeded the threshold. The bound
	// holds for both.
	if len(storms)+len(reminders) > minutes {
		t.Errorf("%d CRM retry storm alerts (and %d reminders) for a %s outage; want at most one per started minute (%d)", len(storms), len(reminders), outage, minutes)
	}
	if chaos && len(overs) != 1 {
		t.Errorf("%d storm-over messages, want 1", len(overs))
	}
	for _, m := range sl.Messages() {
		if !strings.HasPrefix(m.Text, ":cyclone: CRM retry storm") && !strings.HasPrefix(m.Text, over) {
			t.Errorf("unexpected Slack message during a HubSpot outage: %.200s", m.Text)
		}
	}

	t.Logf("hubspot outage: customers=%d webhooks=%d outage_ms=%d refused=%d retry_budget=%s console_polls=%d console_healthy_polls=%d crm_retries_24h_during=%d crm_backlog_max=%d crm_redelivered_max=%d crm_retries_24h_after=%d console_problem_polls=%d contacts_drain_ms=%d drain_ms=%d storm_alerts=%d first_storm_alert_ms=%d storm_reminders=%d storm_over=%d slack_messages=%d dead_letters=0 took_ms=%d",
		customers, len(events), outageEnd.Sub(outageStart).Milliseconds(), refused, budget, polls, healthyPolls, duringRetries, duringBacklog, duringRedelivered,
		after.CRMRetries24h, problemPolls, contactsDrain.Milliseconds(), drain.Milliseconds(), len(storms), firstStorm.Milliseconds(), len(reminders), len(overs),
		len(sl.Messages()), time.Since(start).Milliseconds())
	if len(duringProblems) > 0 {
		t.Logf("the first problems the overview listed during the outage: %s", strings.Join(duringProblems, "; "))
	}
}

// stormAlerts are the times of the Slack messages that start with prefix.
func stormAlerts(msgs []slackemu.Message, prefix string) []time.Time {
	var out []time.Time
	for _, m := range msgs {
		if strings.HasPrefix(m.Text, prefix) {
			out = append(out, m.Time)
		}
	}
	return out
}

// emailOf is the email clusterLifecycles gives customer id.
func emailOf(id string) string {
	return "jenny.rosen+" + strings.TrimPrefix(id, clusterFixtureCustomer) + "@example.com"
}

// waitExplained polls cond every 100ms until it holds, failing the test
// after d with what and explain's account of what is still missing.
func waitExplained(t *testing.T, d time.Duration, what string, cond func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, explain())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// busyConsumers lists the durable consumers that have not settled
// everything stored for them (testkit.Busy), sorted.
func busyConsumers(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	out, err := testkit.Busy(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// isCRMOutage says whether an overview problem is the ongoing CRM (vendor)
// outage.
func isCRMOutage(problem string) bool { return strings.HasPrefix(problem, "CRM sync is failing") }
