//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// The Jaeger the test reads from; scripts/e2e.sh (`make e2e`) starts one
// and sets both.
const (
	envJaegerQueryURL = "E2E_JAEGER_QUERY_URL" // Jaeger's query API base, http://127.0.0.1:16686
	envOTLPEndpoint   = "E2E_OTLP_ENDPOINT"    // Jaeger's OTLP/HTTP base, http://127.0.0.1:4318
)

// The service.name of each service's spans (platform/service: "switchyard-"
// + the service's name; in dev every service keeps its own provider).
const (
	svcGateway   = "switchyard-gateway"
	svcIdentity  = "switchyard-identity"
	svcCRM       = "switchyard-crm"
	svcSupport   = "switchyard-support"
	svcProjector = "switchyard-projector"
)

// spanWait bounds how long the test polls Jaeger for a trace to be complete
// once the status API shows the work done (spans leave the hub every 100 ms
// and Jaeger batches for 100 ms more).
const spanWait = 15 * time.Second

// TestTracesInJaeger is end-to-end tracing against a real Jaeger: the dev hub
// (the built binary, as in TestDevHubSmoke) exports its spans over OTLP, the
// Stripe lifecycle of the smoke test is sent, and the failed payment's trace
// must be one tree from the gateway's webhook span through identity, crm,
// support and the projector, with every parent link intact, and with the
// HTTP calls to HubSpot and Zendesk in it (vendorClientSpanProblems).
func TestTracesInJaeger(t *testing.T) {
	jaeger := strings.TrimRight(os.Getenv(envJaegerQueryURL), "/")
	otlp := strings.TrimRight(os.Getenv(envOTLPEndpoint), "/")
	if jaeger == "" || otlp == "" {
		t.Fatalf("%s and %s must point at a running Jaeger (query API and OTLP/HTTP): run `make e2e`, which starts one (scripts/e2e.sh)",
			envJaegerQueryURL, envOTLPEndpoint)
	}
	var services []string
	if err := jaegerGet(jaeger+"/api/services", &services); err != nil {
		t.Fatalf("Jaeger query API at %s: %v", jaeger, err)
	}
	h := startTracedHub(t, otlp, jaeger)

	// The smoke test's lifecycle, one event at a time: each is projected
	// (the status API finds the customer by it) before the next is sent.
	sent := map[string]string{} // fixture -> Stripe event id
	for _, name := range []string{"invoice.paid", "customer.updated.email-set", "invoice.payment_failed"} {
		raw := testkit.StripeEvent(t, name)
		evt := reFixtureEventID(raw)
		if evt == "" {
			t.Fatalf("fixture %s has no id", name)
		}
		sent[name] = evt
		file := filepath.Join(t.TempDir(), name+".json")
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if code := run(context.Background(), []string{"send", "--webhook-url", "http://" + h.gateway + "/webhooks/stripe", "--secret", h.secret, file},
			os.Getenv, nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), " 200 ") {
			t.Fatalf("send %s: exit %d:\n%s", name, code, out.String())
		}
		testkit.WaitFor(t, 30*time.Second, "the projector to show the customer of "+name, func() bool {
			var res struct {
				Customers []json.RawMessage `json:"customers"`
			}
			return getJSON(h.ops+"/v1/customers?stripe_event_id="+evt, h.opsToken, &res) == nil && len(res.Customers) == 1
		})
	}
	evtFailed := sent["invoice.payment_failed"]

	// The failed payment's hops, as the projector recorded them: the domain
	// event, the ticket and the CRM sync, each with the trace id its message
	// carried.
	var failed, ticket, synced timelineEntry
	var lastTimeline string
	testkit.WaitFor(t, 30*time.Second, "the timeline to show billing.payment.failed, its support.ticket.opened and its crm.contact.synced", func() bool {
		var res struct {
			Customers []struct {
				ID string `json:"id"`
			} `json:"customers"`
		}
		if err := getJSON(h.ops+"/v1/customers?stripe_event_id="+evtFailed, h.opsToken, &res); err != nil || len(res.Customers) != 1 {
			lastTimeline = fmt.Sprint(err, res.Customers)
			return false
		}
		var page struct {
			Entries []timelineEntry `json:"entries"`
		}
		if err := getJSON(h.ops+"/v1/customers/"+res.Customers[0].ID+"/timeline?limit=100", h.opsToken, &page); err != nil {
			lastTimeline = err.Error()
			return false
		}
		b, _ := json.Marshal(page.Entries)
		lastTimeline = string(b)
		failed, ticket, synced = timelineEntry{}, timelineEntry{}, timelineEntry{}
		for _, e := range page.Entries {
			if e.Subject == "billing.payment.failed" && slices.Contains(e.SourceEventIDs, evtFailed) {
				failed = e
			}
		}
		if failed.EventID == "" {
			return false
		}
		for _, e := range page.Entries {
			about := slices.Contains(e.SourceEventIDs, failed.EventID) || slices.Contains(e.SourceEventIDs, evtFailed)
			switch {
			case about && e.Subject == "support.ticket.opened":
				ticket = e
			case about && e.Subject == "crm.contact.synced":
				synced = e
			}
		}
		return ticket.EventID != "" && synced.EventID != ""
	})
	defer func() {
		if t.Failed() {
			t.Logf("timeline: %s", lastTimeline)
		}
	}()
	// The ticket is in the Zendesk emulator.
	if !h.zendeskHasTicketFor(t, failed.EventID) {
		t.Errorf("no ticket in the Zendesk emulator with an external_id for %s", failed.EventID)
	}

	// One trace id across the hops the projector saw.
	if len(failed.TraceID) != 32 {
		t.Fatalf("billing.payment.failed has no trace id in the timeline: %+v", failed)
	}
	if ticket.TraceID != failed.TraceID {
		t.Errorf("support.ticket.opened carries trace %q, billing.payment.failed %q: the trace breaks between identity and support", ticket.TraceID, failed.TraceID)
	}
	if synced.TraceID != failed.TraceID {
		t.Errorf("crm.contact.synced carries trace %q, billing.payment.failed %q: the trace breaks between identity and crm", synced.TraceID, failed.TraceID)
	}

	// Every Stripe event sent is found in Jaeger by the gateway's
	// stripe.event.id attribute, as exactly one trace rooted at the gateway.
	traceOf := map[string]string{}
	for _, name := range []string{"invoice.paid", "customer.updated.email-set", "invoice.payment_failed"} {
		evt := sent[name]
		var found []jaegerTrace
		var err error
		testkit.WaitFor(t, spanWait, "Jaeger to find the gateway's trace of "+evt, func() bool {
			found, err = jaegerTraces(jaeger + "/api/traces?" + url.Values{
				"service":  {svcGateway},
				"tags":     {`{"stripe.event.id":"` + evt + `"}`},
				"lookback": {"1h"},
				"limit":    {"20"},
			}.Encode())
			return err == nil && len(found) > 0
		})
		if len(found) != 1 {
			t.Errorf("%s: Jaeger has %d traces with stripe.event.id=%s, want 1", name, len(found), evt)
			continue
		}
		traceOf[name] = found[0].TraceID
		if name != "invoice.payment_failed" {
			// The other events: one tree through identity to the projector.
			tr, problems := pollTrace(jaeger, found[0].TraceID, func(tr jaegerTrace) []string {
				return traceProblems(tr, svcGateway, svcIdentity, svcProjector)
			})
			t.Logf("trace of %s (%s), %d spans:\n%s", name, tr.TraceID, len(tr.Spans), tr.tree())
			for _, p := range problems {
				t.Errorf("%s trace %s: %s", name, tr.TraceID, p)
			}
		}
	}
	if got := traceOf["invoice.payment_failed"]; got != "" && got != failed.TraceID {
		t.Errorf("Jaeger's gateway trace for %s is %s but the timeline's billing.payment.failed carries %s: the trace breaks between the gateway and identity",
			evtFailed, got, failed.TraceID)
	}

	// The failed payment: ONE trace, from the webhook to the ticket, the CRM
	// sync and the projection, parent links intact, vendor calls included.
	tr, problems := pollTrace(jaeger, failed.TraceID, func(tr jaegerTrace) []string {
		p := traceProblems(tr, svcGateway, svcIdentity, svcCRM, svcSupport, svcProjector)
		p = append(p, dbSpanProblems(tr, svcIdentity, svcCRM, svcSupport, svcProjector)...)
		return append(p, vendorClientSpanProblems(tr, map[string]string{"HubSpot": h.hubspot, "Zendesk": h.zendesk})...)
	})
	t.Logf("trace of invoice.payment_failed %s (%s), %d spans:\n%s", evtFailed, tr.TraceID, len(tr.Spans), tr.tree())
	for _, p := range problems {
		t.Errorf("invoice.payment_failed trace %s: %s", failed.TraceID, p)
	}
	// Where did a missing vendor call go, if anywhere? Client spans toward
	// the emulator in other traces show where the context was lost.
	missing := map[string]string{}
	for name, hostport := range map[string]string{"HubSpot": h.hubspot, "Zendesk": h.zendesk} {
		if len(clientSpansTo(tr, hostport)) == 0 {
			missing[name] = hostport
		}
	}
	if len(missing) > 0 {
		for _, l := range strayClientSpans(jaeger, failed.TraceID, missing) {
			t.Log(l)
		}
	}

	h.stop(t)
}

// dbSpanProblems is the assertion that each service's PostgreSQL work for
// the event is in its trace: at least one span with
// db.system.name=postgresql from each. It returns one line per service
// missing.
func dbSpanProblems(tr jaegerTrace, services ...string) []string {
	have := map[string]bool{}
	for _, s := range tr.Spans {
		if s.tag("db.system.name") == "postgresql" {
			have[tr.service(s)] = true
		}
	}
	var out []string
	for _, svc := range services {
		if !have[svc] {
			out = append(out, "no PostgreSQL span from "+svc+": its database work is not in the trace")
		}
	}
	return out
}

// vendorClientSpanProblems is the assertion that the trace holds the HTTP
// calls to the vendors: for each vendor (name -> the emulator's host:port),
// at least one span with span.kind=client whose request went to that host
// and port (server.address/server.port, or url.full/http.url,
// net.peer.name/net.peer.port). It returns one line per vendor missing.
func vendorClientSpanProblems(tr jaegerTrace, vendors map[string]string) []string {
	var out []string
	for _, name := range sortedKeys(vendors) {
		if len(clientSpansTo(tr, vendors[name])) == 0 {
			out = append(out, fmt.Sprintf("no span.kind=client span toward %s (%s): the HTTP call to %s is not in the trace", name, vendors[name], name))
		}
	}
	return out
}

// clientSpansTo returns the trace's client spans whose request went to
// hostport.
func clientSpansTo(tr jaegerTrace, hostport string) []jaegerSpan {
	host, port, _ := strings.Cut(hostport, ":")
	var out []jaegerSpan
	for _, s := range tr.Spans {
		if s.tag("span.kind") != "client" {
			continue
		}
		switch {
		case s.tag("server.address") == host && s.tag("server.port") == port,
			s.tag("net.peer.name") == host && s.tag("net.peer.port") == port:
			out = append(out, s)
		default:
			for _, k := range []string{"url.full", "http.url"} {
				if u, err := url.Parse(s.tag(k)); err == nil && u.Host == hostport {
					out = append(out, s)
					break
				}
			}
		}
	}
	return out
}

// strayClientSpans looks for client spans toward the vendors in every
// other trace Jaeger holds for the services that call them, and describes
// where they sit.
func strayClientSpans(jaeger, traceID string, vendors map[string]string) []string {
	var out []string
	found := map[string]bool{}
	for _, svc := range []string{svcCRM, svcSupport} {
		trs, err := jaegerTraces(jaeger + "/api/traces?" + url.Values{"service": {svc}, "lookback": {"1h"}, "limit": {"500"}}.Encode())
		if err != nil {
			out = append(out, fmt.Sprintf("searching %s's traces: %v", svc, err))
			continue
		}
		for _, tr := range trs {
			if tr.TraceID == traceID {
				continue
			}
			for _, name := range sortedKeys(vendors) {
				for _, s := range clientSpansTo(tr, vendors[name]) {
					found[name] = true
					where := "as a root span"
					if p := s.parent(); p != "" {
						where = "under " + tr.describe(p)
					}
					out = append(out, fmt.Sprintf("%s call %q (%s) is in another trace, %s, %s", name, s.OperationName, tr.service(s), tr.TraceID, where))
				}
			}
		}
	}
	for _, name := range sortedKeys(vendors) {
		if !found[name] {
			out = append(out, fmt.Sprintf("no span.kind=client span toward %s (%s) in any trace of %s or %s: the calls to %s made no span at all (no span in their context?)",
				name, vendors[name], svcCRM, svcSupport, name))
		}
	}
	return out
}

// traceProblems checks a trace's shape: the services it must span, exactly
// one root (no CHILD_OF reference), the gateway's, and every CHILD_OF
// reference pointing at a span of the same trace.
func traceProblems(tr jaegerTrace, services ...string) []string {
	var out []string
	if len(tr.Spans) == 0 {
		return []string{"not in Jaeger"}
	}
	have := map[string]bool{}
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		have[tr.service(s)] = true
		ids[s.SpanID] = true
	}
	for _, svc := range services {
		if !have[svc] {
			out = append(out, "no span from "+svc)
		}
	}
	var roots []string
	for _, s := range tr.Spans {
		p := s.parent()
		if p == "" {
			roots = append(roots, tr.describe(s.SpanID))
			continue
		}
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" && (r.TraceID != tr.TraceID || !ids[r.SpanID]) {
				out = append(out, fmt.Sprintf("%s has parent %s/%s, which is not in the trace", tr.describe(s.SpanID), r.TraceID, r.SpanID))
			}
		}
	}
	switch {
	case len(roots) != 1:
		out = append(out, fmt.Sprintf("%d root spans, want 1 (the gateway's): %s", len(roots), strings.Join(roots, "; ")))
	case !strings.HasPrefix(roots[0], svcGateway+":"):
		out = append(out, "the root span is "+roots[0]+", not the gateway's")
	}
	return out
}

// pollTrace reads the trace until check finds nothing wrong or spanWait
// has passed, and returns the last read and what check found in it.
func pollTrace(jaeger, traceID string, check func(jaegerTrace) []string) (jaegerTrace, []string) {
	deadline := time.Now().Add(spanWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var tr jaegerTrace
		trs, err := jaegerTraces(jaeger + "/api/traces/" + traceID)
		var problems []string
		switch {
		case err != nil:
			problems = []string{err.Error()}
		case len(trs) != 1:
			problems = []string{fmt.Sprintf("GET /api/traces/%s returned %d traces", traceID, len(trs))}
		default:
			tr = trs[0]
			problems = check(tr)
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			return tr, problems
		}
		<-tick.C
	}
}

// jaegerTraces GETs a Jaeger query API URL that answers traces; a trace
// not (yet) found is no traces, not an error.
func jaegerTraces(u string) ([]jaegerTrace, error) {
	var trs []jaegerTrace
	err := jaegerGet(u, &trs)
	return trs, err
}

// jaegerGet GETs a Jaeger query API URL and decodes its "data" into v
// (left alone on 404).
func jaegerGet(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Msg string `json:"msg"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("GET %s: %s", u, res.Errors[0].Msg)
	}
	if len(res.Data) == 0 || string(res.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(res.Data, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// jaegerTrace is a trace as Jaeger's query API (/api/traces) returns it.
type jaegerTrace struct {
	TraceID   string       `json:"traceID"`
	Spans     []jaegerSpan `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64 `json:"startTime"` // µs
	Duration  int64 `json:"duration"`  // µs
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
}

// tag returns the span's tag key as text ("" if absent).
func (s jaegerSpan) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// parent is the span id of the span's CHILD_OF reference, "" for a root.
func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (tr jaegerTrace) service(s jaegerSpan) string { return tr.Processes[s.ProcessID].ServiceName }

// describe names a span of the trace as "service: operation".
func (tr jaegerTrace) describe(spanID string) string {
	for _, s := range tr.Spans {
		if s.SpanID == spanID {
			return tr.service(s) + ": " + s.OperationName
		}
	}
	return "span " + spanID
}

// tree renders the trace compactly, one "service: operation" per line,
// children indented under their parent in start order; a span whose
// parent is not in the trace is shown at the top, marked.
func (tr jaegerTrace) tree() string {
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	children := map[string][]jaegerSpan{}
	for _, s := range tr.Spans {
		p := s.parent()
		if !ids[p] {
			p = ""
		}
		children[p] = append(children[p], s)
	}
	for _, c := range children {
		sort.Slice(c, func(i, j int) bool { return c[i].StartTime < c[j].StartTime })
	}
	var b strings.Builder
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range children[parent] {
			b.WriteString(strings.Repeat("  ", depth+1))
			b.WriteString(strings.TrimPrefix(tr.service(s), "switchyard-") + ": " + s.OperationName)
			if k := s.tag("span.kind"); k != "" {
				b.WriteString(" [" + k + "]")
			}
			if p := s.parent(); p != "" && !ids[p] {
				b.WriteString(" (parent " + p + " NOT IN TRACE)")
			}
			b.WriteString("\n")
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return strings.TrimRight(b.String(), "\n")
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type timelineEntry struct {
	EventID        string   `json:"event_id"`
	Subject        string   `json:"subject"`
	SourceEventIDs []string `json:"source_event_ids"`
	TraceID        string   `json:"trace_id"`
}

// tracedHub is `switchyard dev` as a process exporting its spans to Jaeger.
type tracedHub struct {
	gateway, ops, hubspot, zendesk string // host:port, ops as a base URL
	secret, opsToken               string
	stderr                         *bytes.Buffer
	cmd                            *exec.Cmd
	lines                          chan string
	exited                         chan error
	stopped                        bool
}

// startTracedHub builds and starts the hub like TestDevHubSmoke (free ports
// for every listener, a private data folder and PostgreSQL cluster, no
// vendor credentials: the emulators), with OTLP export to otlp.
func startTracedHub(t *testing.T, otlp, jaeger string) *tracedHub {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data, err := os.MkdirTemp("", "switchyard-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(data) })
	if err := os.Chmod(data, 0o755); err != nil { // the private cluster may run as postgres
		t.Fatal(err)
	}
	ports := freePorts(t, 12)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	h := &tracedHub{gateway: addr(0), hubspot: addr(4), zendesk: addr(6), ops: "http://" + addr(10), stderr: &bytes.Buffer{},
		lines: make(chan string, 100), exited: make(chan error, 1)}
	h.cmd = exec.Command(bin, "dev", "--data-dir", filepath.Join(data, "hub"), "--gateway-addr", h.gateway, "--gateway-admin-addr", addr(11), "--nats-port", strconv.Itoa(ports[1]),
		"--identity-addr", addr(2), "--crm-addr", addr(3), "--hubspot-addr", h.hubspot, "--support-addr", addr(5),
		"--zendesk-addr", h.zendesk, "--alerts-addr", addr(7), "--slack-addr", addr(8),
		"--projector-addr", addr(9), "--ops-addr", addr(10))
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "DATABASE_URL" && k != "NATS_URL" && k != "STRIPE_WEBHOOK_SECRET" && k != envJaegerQueryURL && k != envOTLPEndpoint &&
			!strings.HasPrefix(k, "OTEL_") && !strings.HasPrefix(k, "JAEGER_") &&
			!strings.HasPrefix(k, "HUBSPOT_") && !strings.HasPrefix(k, "ZENDESK_") && !strings.HasPrefix(k, "SUPPORT_") &&
			!strings.HasPrefix(k, "SLACK_") && !strings.HasPrefix(k, "ALERTS_") && !strings.HasPrefix(k, "SWITCHYARD_OPS") {
			env = append(env, kv)
		}
	}
	h.cmd.Env = append(env,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+otlp,
		"OTEL_METRICS_EXPORTER=none",
		"OTEL_BSP_SCHEDULE_DELAY=100", // ms: spans leave the hub fast
		"JAEGER_UI_URL="+jaeger,       // the console's trace links
	)
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stderr = h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		h.exited <- h.cmd.Wait()
	}()
	// SIGTERM, never SIGKILL first: dev stops its private PostgreSQL.
	t.Cleanup(func() {
		if h.stopped {
			return
		}
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		go func() {
			for range h.lines {
			}
		}()
		select {
		case <-h.exited:
		case <-time.After(30 * time.Second):
			_ = h.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("dev's log:\n%s", tail(h.stderr.String(), 60))
		}
	})

	reSecret := regexp.MustCompile(`signing secret:\s+(whsec_[0-9a-f]+)`)
	reToken := regexp.MustCompile(`ops token:\s+([0-9a-f]{48})`)
	deadline := time.After(90 * time.Second)
	for h.secret == "" || h.opsToken == "" {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("dev exited before printing its banner: %v\n%s", <-h.exited, h.stderr.String())
			}
			if m := reSecret.FindStringSubmatch(l); m != nil {
				h.secret = m[1]
			}
			if m := reToken.FindStringSubmatch(l); m != nil {
				h.opsToken = m[1]
			}
		case <-deadline:
			t.Fatalf("no banner within 90s\n%s", h.stderr.String())
		}
	}
	return h
}

// zendeskHasTicketFor reports whether the Zendesk emulator holds a ticket
// whose external_id names the billing event (switchyard:<rule>:<event id>).
func (h *tracedHub) zendeskHasTicketFor(t *testing.T, billingEventID string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+h.zendesk+"/api/v2/tickets?per_page=100", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(devZendeskEmail+"/token", devZendeskToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("Zendesk emulator: %v", err)
	}
	defer resp.Body.Close()
	var res struct {
		Tickets []struct {
			ExternalID string `json:"external_id"`
		} `json:"tickets"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Zendesk emulator: GET /api/v2/tickets: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	for _, tk := range res.Tickets {
		if strings.HasSuffix(tk.ExternalID, ":"+billingEventID) {
			return true
		}
	}
	return false
}

// stop sends SIGTERM and waits for a clean exit.
func (h *tracedHub) stop(t *testing.T) {
	t.Helper()
	h.stopped = true
	if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range h.lines {
	}
	select {
	case err := <-h.exited:
		if err != nil {
			t.Errorf("dev exited with %v after SIGTERM\n%s", err, tail(h.stderr.String(), 60))
		}
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		t.Error("dev did not exit within 30s of SIGTERM")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
