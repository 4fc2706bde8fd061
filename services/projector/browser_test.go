package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// chromium finds the headless browser the console test drives.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium for the console's browser test: install Debian's package (apt-get install chromium; .ci/run does) or set CHROMIUM to a Chrome binary")
	return ""
}

// artifacts is where the browser test saves its screenshots:
// SWITCHYARD_TEST_ARTIFACTS, else .artifacts/console at the repository root.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHYARD_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".artifacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// session is a headless Chromium driven by one test, with a deadline for
// everything it does.
type session struct {
	t        *testing.T
	ctx      context.Context
	deadline time.Time
	dir      string // where screenshots go
}

func newSession(t *testing.T) *session {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	// The first run starts the browser and must not carry a deadline.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return &session{t: t, ctx: ctx, deadline: time.Now().Add(90 * time.Second), dir: artifacts(t)}
}

// on is the session for subtest t (a subtest must not fail its parent).
func (s *session) on(t *testing.T) *session {
	c := *s
	c.t = t
	return &c
}

func (s *session) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	sctx, cancel := context.WithDeadline(s.ctx, s.deadline)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		s.t.Fatalf("%s: %v", what, err)
	}
}

func (s *session) shot(name string) {
	s.t.Helper()
	sctx, cancel := context.WithDeadline(s.ctx, s.deadline)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) text(sel string) string {
	s.t.Helper()
	sctx, cancel := context.WithDeadline(s.ctx, s.deadline)
	defer cancel()
	got, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		s.t.Fatalf("read %s: %v", sel, err)
	}
	return got
}

// textNow is the text of the first element sel matches, "" if there is
// none (text waits for one to appear).
func (s *session) textNow(sel string) string {
	s.t.Helper()
	var got string
	s.eval(`(e => e ? e.innerText : "")(document.querySelector(`+strconv.Quote(sel)+`))`, &got)
	return got
}

// eval runs a JavaScript expression in the page and decodes its value into out.
func (s *session) eval(js string, out any) {
	s.t.Helper()
	sctx, cancel := context.WithDeadline(s.ctx, s.deadline)
	defer cancel()
	raw, err := chromedp.Run(sctx, chromedp.Evaluate[json.RawMessage](js))
	if err != nil {
		s.t.Fatalf("evaluate %.80s: %v", js, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		s.t.Fatalf("evaluate %.80s: %v (%s)", js, err, raw)
	}
}

// login logs in with token from the console's front door.
func (s *session) login(base, token string) {
	s.t.Helper()
	s.step("open the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	s.step("log in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("open-failures")))
}

// A founder's session in a real browser: log in, find a customer by
// email and read the timeline, open a failure, dry-run its replay, replay
// it and see it resolved. Screenshots of each step are saved.
func TestConsoleInBrowser(t *testing.T) {
	f := newConsoleFixture(t)
	b := newSession(t)

	b.step("open the console", chromedp.Navigate(f.api+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	b.shot("01-login.png")
	b.step("log in", chromedp.SendKeys(chromedp.ID("token"), operateToken), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("open-failures")))
	b.shot("02-overview.png")
	if got := strings.TrimSpace(b.text("#open-failures")); got != "1" {
		t.Fatalf("overview shows %q open failures, want 1", got)
	}

	b.step("find the customer by email", chromedp.Navigate(f.api+"/console/customers"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), f.email), chromedp.Click(chromedp.ID("search")), chromedp.WaitVisible(chromedp.ID("timeline")))
	b.shot("03-customer.png")
	timeline := b.text("#timeline")
	for _, want := range []string{"Customer details updated", "Subscription started", "billing.customer.upserted"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q:\n%s", want, timeline)
		}
	}
	var traceLinks int
	b.eval(`document.querySelectorAll('#timeline a[href^="http://jaeger.example:16686/trace/"]').length`, &traceLinks)
	if traceLinks == 0 {
		t.Error("the timeline has no Jaeger trace links")
	}

	b.step("open the failure", chromedp.Navigate(f.api+"/console/failures"), chromedp.WaitVisible(chromedp.ID("failures")),
		chromedp.Click(chromedp.CSS(`#failures a[href="/console/failures/`+itoa(f.seq)+`"]`)), chromedp.WaitVisible(chromedp.ID("dry-run")))
	b.shot("04-failure.png")
	if !strings.Contains(b.text("#reason"), "not set up in the provisioning service") {
		t.Error("the failure page does not show the reason")
	}
	b.step("dry-run the replay", chromedp.Click(chromedp.ID("dry-run")), chromedp.WaitVisible(chromedp.ID("plan")))
	b.shot("05-dry-run.png")
	if plan := b.text("#plan"); !strings.Contains(plan, "A replay will publish the original") || !strings.Contains(plan, "for consumer fulfilment only") {
		t.Errorf("dry run says:\n%s", plan)
	}
	if _, err := deadletterGet(f, f.seq); err != nil || f.handled.Load() != 0 {
		t.Fatalf("the dry run changed something: %v, handled %d", err, f.handled.Load())
	}

	f.healthy.Store(true) // the founder fixed the plan in the provisioning service
	b.step("replay", chromedp.Click(chromedp.ID("replay")), chromedp.WaitVisible(chromedp.ID("status")))
	b.shot("06-resolved.png")
	if got := b.text("#status"); got != "resolved" {
		t.Fatalf("status after replay = %q, want resolved", got)
	}
	testkit.WaitFor(t, 20*time.Second, "the replayed message handled", func() bool { return f.handled.Load() == 1 })
	if _, err := deadletterGet(f, f.seq); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("dead letter after replay: %v", err)
	}
	if n := countAudit(t, f); n != 1 {
		t.Fatalf("%d audit records, want the one replay", n)
	}
	t.Logf("screenshots in %s", b.dir)
}

// What a founder sees, in a real browser: who each failure is about,
// states by urgency, effects next to their causes, trace ids that link to
// Jaeger, and only the webhook failures there were.
func TestConsoleFounderViewInBrowser(t *testing.T) {
	f := newFounderFixture(t)
	s := newSession(t)
	s.login(f.api, readToken)

	t.Run("styles apply under the CSP", func(t *testing.T) {
		var bg string
		s.on(t).eval(`getComputedStyle(document.querySelector('header')).backgroundColor`, &bg)
		if bg != "rgb(29, 36, 48)" {
			t.Errorf("header background %q: the page's styles did not apply", bg)
		}
	})

	t.Run("webhook failures list only what failed", func(t *testing.T) {
		s := s.on(t)
		s.step("overview", chromedp.Navigate(f.api+"/console/"), chromedp.WaitVisible(chromedp.ID("open-failures")))
		s.shot("founder-01-overview.png")
		var card struct{ Total, Results string }
		s.eval(`(c => c ? {Total: c.querySelector('b').innerText, Results: c.querySelector('.note').innerText} : {})(
			[...document.querySelectorAll('.card')].find(c => c.innerText.startsWith('Webhook failures')))`, &card)
		if got := strings.TrimSpace(card.Total); got != "3" {
			t.Errorf("webhook failures total %q, want 3", got)
		}
		got := card.Results
		if !strings.Contains(got, "signature_invalid 3") || !strings.Contains(got, "123 received") {
			t.Errorf("webhook results %q: want signature_invalid 3 and 123 received", got)
		}
		for _, zero := range []string{"payload_too_large", "invalid_json", "store_unavailable", "duplicate", "none"} {
			if strings.Contains(got, zero) {
				t.Errorf("webhook results %q list %s", got, zero)
			}
		}
	})

	t.Run("customers by state, most urgent first", func(t *testing.T) {
		s := s.on(t)
		s.step("overview", chromedp.Navigate(f.api+"/console/"), chromedp.WaitVisible(chromedp.ID("open-failures")))
		var first struct{ Class, Label, Text string }
		s.eval(`(e => e ? {Class: e.className, Label: e.querySelector('.sev').textContent, Text: e.textContent} : {})(document.querySelector('#by-state .state'))`, &first)
		if !strings.Contains(first.Class, "critical") || first.Label != "critical" || !strings.Contains(first.Text, "payment failed") {
			t.Errorf("first state by severity: %+v, want Ada's failed payment, critical", first)
		}
	})

	t.Run("failures show their customer", func(t *testing.T) {
		s := s.on(t)
		s.step("failures", chromedp.Navigate(f.api+"/console/failures"), chromedp.WaitVisible(chromedp.ID("failures")))
		s.shot("founder-02-failures.png")
		var rows map[string]struct{ Text, Href string }
		s.eval(`Object.fromEntries([...document.querySelectorAll('#failures tr')].filter(tr => tr.querySelector('td a')).map(tr => {
			const td = tr.children[3], a = td.querySelector('a');
			return ['failure-' + tr.children[0].innerText.trim(), {Text: td.innerText.trim(), Href: a ? a.getAttribute('href') : ''}];
		}))`, &rows)
		for name, want := range map[string]struct{ text, href string }{
			"by-event":                {"cust_ada", "/console/customers/cust_ada"},
			"by-stripe-customer":      {"cust_ada", "/console/customers/cust_ada"},
			"domain-event":            {"cust_ada", "/console/customers/cust_ada"},
			"envelope-customer":       {"cust_ada", "/console/customers/cust_ada"},
			"unknown-stripe-customer": {"cus_Stranger not in the projection yet", ""},
			"nobody":                  {"unknown", ""},
		} {
			got := rows["failure-"+itoa(f.seqs[name])]
			if got.Text != want.text || got.Href != want.href {
				t.Errorf("failure %s: customer %q → %q, want %q → %q", name, got.Text, got.Href, want.text, want.href)
			}
		}
		if t.Failed() {
			return
		}
		s.step("open the customer of a Stripe event's failure", chromedp.Click(chromedp.CSS(`#failure-`+itoa(f.seqs["by-event"])+` td.customer a`)),
			chromedp.WaitVisible(chromedp.ID("timeline")))
		if h1 := s.text("h1"); !strings.Contains(h1, "Ada King") {
			t.Errorf("the customer link led to %q", h1)
		}
		s.step("a failure about nobody", chromedp.Navigate(f.api+"/console/failures/"+itoa(f.seqs["nobody"])), chromedp.WaitVisible(chromedp.ID("reason")))
		if got := strings.TrimSpace(s.textNow("#customer")); got != "unknown" {
			t.Errorf("failure about nobody: customer %q, want unknown", got)
		}
	})

	t.Run("states by severity, in colour and in words", func(t *testing.T) {
		s := s.on(t)
		s.step("customer", chromedp.Navigate(f.api+"/console/customers/cust_ada"), chromedp.WaitVisible(chromedp.ID("states")))
		var states []struct{ Class, Label, Text, Background string }
		s.eval(`[...document.querySelectorAll('#states > span')].map(e => ({Class: e.className, Label: (e.querySelector('.sev') || {}).textContent || '',
			Text: e.textContent, Background: getComputedStyle(e).backgroundColor}))`, &states)
		bySeverity := map[string]string{} // severity → its background
		for _, st := range states {
			sev := strings.TrimPrefix(st.Class, "state ")
			if st.Label != sev {
				t.Errorf("state %q: label %q, class %q (the severity must be in words too)", st.Text, st.Label, st.Class)
			}
			bySeverity[sev] = st.Background
			want := map[string]string{"payment failed": "critical", "CRM update failed": "critical", "CRM update pending": "warning", "support ticket opened": "info"}
			for prefix, w := range want {
				if strings.HasPrefix(strings.TrimPrefix(st.Text, st.Label), prefix) && sev != w {
					t.Errorf("state %q is %s, want %s", st.Text, sev, w)
				}
			}
		}
		if len(states) == 0 || !strings.Contains(states[0].Text, "payment failed") {
			t.Fatalf("states: %+v, want the failed payment first", states)
		}
		if bySeverity["critical"] == "" || bySeverity["critical"] == bySeverity["info"] || bySeverity["critical"] == bySeverity["warning"] || bySeverity["warning"] == bySeverity["info"] {
			t.Errorf("severities share a style: %v", bySeverity)
		}
	})

	t.Run("effects sit with their cause", func(t *testing.T) {
		s := s.on(t)
		s.step("customer", chromedp.Navigate(f.api+"/console/customers/cust_ada"), chromedp.WaitVisible(chromedp.ID("timeline")))
		s.shot("founder-03-customer.png")
		type row struct {
			Class, Event, Cause, What, Text string
			Indent                          float64
		}
		var rows []row
		s.eval(`[...document.querySelectorAll('#timeline tr')].filter(tr => tr.querySelector('td')).map(tr => {
			const what = tr.querySelector('td.what') || tr.children[1];
			return {Class: tr.className, Event: tr.dataset.event || '', Cause: tr.dataset.cause || '', What: what.innerText, Text: tr.innerText,
				Indent: parseFloat(getComputedStyle(what).paddingLeft)};
		})`, &rows)
		find := func(what string) int { // the first (newest) row saying what
			for i, r := range rows {
				if strings.Contains(r.What, what) {
					return i
				}
			}
			t.Fatalf("no timeline row says %q:\n%+v", what, rows)
			return -1
		}
		i := find("Payment failed: 49.00 USD")
		if later := find("Customer details updated"); later > i {
			t.Errorf("the event after the failed payment is listed below it")
		}
		if len(rows) < i+3 {
			t.Fatalf("nothing under the failed payment:\n%+v", rows)
		}
		sync, ticket := rows[i+1], rows[i+2]
		if sync.Cause != f.failed || !strings.Contains(sync.What, "CRM contact updated (hubspot hs_ada)") || !strings.Contains(sync.What, "×5") {
			t.Errorf("first under the failed payment: %+v, want its CRM sync ×5", sync)
		}
		if ticket.Cause != f.failed || !strings.Contains(ticket.What, "Support ticket opened: #7001") {
			t.Errorf("second under the failed payment: %+v, want its ticket", ticket)
		}
		if sync.Indent <= rows[i].Indent || !strings.Contains(sync.Class, "effect") {
			t.Errorf("effects are not indented under their cause: %+v vs %+v", sync, rows[i])
		}
		if len(rows) > i+3 && rows[i+3].Cause == f.failed {
			t.Errorf("more under the failed payment than its sync and ticket: %+v", rows[i+3])
		}
		syncs := 0
		for _, r := range rows[i+1:] {
			if strings.Contains(r.What, "CRM contact updated") && strings.Contains(r.Text, f.traces["failed"][:8]) {
				syncs++
			}
		}
		if syncs != 1 {
			t.Errorf("the failed payment's syncs take %d lines, want 1", syncs)
		}
		orphan := rows[find("CRM update failed")]
		if orphan.Cause != "" || strings.Contains(orphan.Class, "effect") || !strings.Contains(orphan.Text, "not in this timeline") {
			t.Errorf("an outcome whose cause is not in the history: %+v, want it on its own, saying so", orphan)
		}
	})

	t.Run("trace ids are short, whole, unwrapped and linked to Jaeger", func(t *testing.T) {
		s := s.on(t)
		type trace struct {
			Tag, Href, Title, Text, WhiteSpace string
			Lines, Shown, Whole                int
		}
		const read = `[...document.querySelectorAll(SEL)].map(e => { const c = e.querySelector('code') || e; return {Tag: e.tagName, Href: e.getAttribute('href') || '',
			Title: e.title, Text: c.textContent, WhiteSpace: getComputedStyle(e).whiteSpace, Lines: e.getClientRects().length,
			Shown: c.clientWidth, Whole: c.scrollWidth}; })`
		check := func(where string, traces []trace, want ...string) {
			t.Helper()
			seen := map[string]bool{}
			if len(traces) == 0 {
				t.Errorf("%s: no trace ids", where)
			}
			for _, tr := range traces {
				seen[tr.Title] = true
				if tr.Tag != "A" || tr.Href != founderJaeger+"/trace/"+tr.Title {
					t.Errorf("%s: trace %s is a %s to %q, want a link to %s/trace/%s", where, tr.Title, tr.Tag, tr.Href, founderJaeger, tr.Title)
				}
				if tr.Text != tr.Title || len(tr.Title) != 32 {
					t.Errorf("%s: trace text %q, title %q: want the whole id in both (so a copy takes it all)", where, tr.Text, tr.Title)
				}
				if tr.WhiteSpace != "nowrap" || tr.Lines != 1 {
					t.Errorf("%s: trace %s wraps (white-space %s, %d lines)", where, tr.Title, tr.WhiteSpace, tr.Lines)
				}
				if tr.Shown*3 > tr.Whole {
					t.Errorf("%s: trace %s shows %dpx of %dpx: want it cut to about 8 characters", where, tr.Title, tr.Shown, tr.Whole)
				}
			}
			for _, id := range want {
				if !seen[id] {
					t.Errorf("%s: no trace %s among %v", where, id, seen)
				}
			}
		}
		var traces []trace
		s.step("customer", chromedp.Navigate(f.api+"/console/customers/cust_ada"), chromedp.WaitVisible(chromedp.ID("timeline")))
		s.eval(strings.Replace(read, "SEL", `'#timeline td:last-child > *'`, 1), &traces)
		check("timeline", traces, f.traces["failed"], f.traces["later"], f.traces["orphan"], f.traces["upserted"])
		s.step("failures", chromedp.Navigate(f.api+"/console/failures"), chromedp.WaitVisible(chromedp.ID("failures")))
		s.eval(strings.Replace(read, "SEL", `'#failures .trace'`, 1), &traces)
		if len(traces) != len(f.seqs) {
			t.Errorf("failures list: %d trace links, want one per failure (%d)", len(traces), len(f.seqs))
		}
		check("failures", traces, f.traces["dead-letter"])
		s.step("a failure", chromedp.Navigate(f.api+"/console/failures/"+itoa(f.seqs["by-event"])), chromedp.WaitVisible(chromedp.ID("reason")))
		s.shot("founder-04-failure.png")
		s.eval(strings.Replace(read, "SEL", `'#trace .trace'`, 1), &traces)
		check("failure page", traces, f.traces["dead-letter"])
	})
	t.Logf("screenshots in %s", s.dir)
}
