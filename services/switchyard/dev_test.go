package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// freePorts returns n distinct free ports: all n are held open together,
// so the kernel cannot hand the same one out twice.
func freePorts(t testing.TB, n int) []int { return testkit.FreePorts(t, n) }

// TestDevHubSmoke is `make run` end to end: the built binary starts the hub
// as a process (embedded NATS, a private PostgreSQL cluster, the gateway),
// a signed event posted with `switchyard send` is stored, and SIGTERM stops
// everything with exit code 0.
func TestDevHubSmoke(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "switchyard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Like a checkout, the data folder must be reachable by the postgres
	// user that runs the private cluster when tests run as root.
	data, err := os.MkdirTemp("", "switchyard-dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(data) })
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 12)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	gw, gwAdmin := addr(0), addr(11)
	natsPort := ports[1]

	cmd := exec.Command(bin, "dev", "--data-dir", filepath.Join(data, "hub"), "--gateway-addr", gw, "--gateway-admin-addr", gwAdmin, "--nats-port", strconv.Itoa(natsPort),
		"--identity-addr", addr(2), "--crm-addr", addr(3), "--hubspot-addr", addr(4), "--support-addr", addr(5),
		"--zendesk-addr", addr(6), "--alerts-addr", addr(7), "--slack-addr", addr(8),
		"--projector-addr", addr(9), "--ops-addr", addr(10))
	// A fresh machine's `make run`: no DATABASE_URL, no NATS_URL, no secret,
	// no vendor credentials.
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "DATABASE_URL" && k != "NATS_URL" && k != "STRIPE_WEBHOOK_SECRET" && !strings.HasPrefix(k, "HUBSPOT_") && !strings.HasPrefix(k, "ZENDESK_") && !strings.HasPrefix(k, "SUPPORT_") && !strings.HasPrefix(k, "SLACK_") && !strings.HasPrefix(k, "ALERTS_") && !strings.HasPrefix(k, "SWITCHYARD_OPS") {
			env = append(env, kv)
		}
	}
	// Debug logging: the redaction check below reads every line.
	cmd.Env = append(env, "LOG_LEVEL=debug")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer // read while the hub still writes
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	var secret, opsToken, metricsURL, migrated string
	reSecret := regexp.MustCompile(`signing secret:\s+(whsec_[0-9a-f]+)`)
	reToken := regexp.MustCompile(`ops token:\s+([0-9a-f]{48})`)
	reMetrics := regexp.MustCompile(`metrics:\s+(\S+)`)
	deadline := time.After(90 * time.Second)
	for secret == "" || opsToken == "" || metricsURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited before printing its banner: %v\n%s", <-exited, stderr.String())
			}
			if strings.HasPrefix(l, "Migrated NATS and PostgreSQL") {
				migrated = l
			}
			if m := reSecret.FindStringSubmatch(l); m != nil {
				secret = m[1]
			}
			if m := reToken.FindStringSubmatch(l); m != nil {
				opsToken = m[1]
			}
			if m := reMetrics.FindStringSubmatch(l); m != nil {
				metricsURL = m[1]
			}
		case <-deadline:
			t.Fatalf("no banner within 90s\n%s", stderr.String())
		}
	}

	// The services only check for their streams, consumers and tables: dev
	// made them first, as switchyard migrate does.
	all := len(natsbus.StreamNames()) + len(natsbus.Durables(natsbus.Options{})) + 5 // ledger, identity, projector, alerts, projection
	if !strings.Contains(migrated, fmt.Sprintf("Migrated NATS and PostgreSQL (switchyard migrate): %d created, 0 updated, 0 unchanged", all)) {
		t.Errorf("dev did not say it migrated a fresh hub (want every stream, consumer and service's tables created): %q", migrated)
	}

	// The gateway's readiness and metrics are on its admin listener only;
	// the webhook address serves the webhook and liveness.
	if want := "http://" + gwAdmin + "/metrics"; metricsURL != want {
		t.Errorf("the banner's metrics URL is %s, want the gateway's admin listener %s", metricsURL, want)
	}
	for _, path := range []string{"/metrics", "/readyz", "/api/stripe/webhook-health"} {
		resp, err := http.Get("http://" + gw + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("the webhook address serves %s: %d, want 404", path, resp.StatusCode)
		}
	}

	fixture := filepath.Join(t.TempDir(), "invoice.paid.json")
	if err := os.WriteFile(fixture, testkit.StripeEvent(t, "invoice.paid"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := run(context.Background(), []string{"send", "--webhook-url", "http://" + gw + "/webhooks/stripe", "--secret", secret, "-n", "3", "-c", "3", fixture},
		os.Getenv, nil, &out, io.Discard)
	if code != 0 || strings.Count(out.String(), " 200 ") != 3 {
		t.Fatalf("send exit %d:\n%s", code, out.String())
	}

	// Each part has its own NATS identity: nobody connects anonymously,
	// and the CLI's operator identity is in the data folder.
	hubNATS := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	if nc, err := nats.Connect(hubNATS, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Error("the dev hub's NATS accepts an anonymous client")
	}
	operatorPW, err := os.ReadFile(filepath.Join(data, "hub", natsUsersDir, natsbus.IdentityOperator))
	if err != nil {
		t.Fatalf("the operator's NATS password: %v", err)
	}
	// The operator's replay signing key, which the projector signs replays
	// with and whose public key every consumer checks them against.
	if fi, err := os.Stat(filepath.Join(data, "hub", replayKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("replay signing key: %v, want a file only its owner reads", err)
	}
	nc, err := nats.Connect(hubNATS, nats.UserInfo(natsbus.IdentityOperator, strings.TrimSpace(string(operatorPW))),
		nats.CustomInboxPrefix(natsbus.InboxPrefix(natsbus.IdentityOperator)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("STRIPE holds %d messages after 3 sends of one event, want 1", info.State.Msgs)
	}
	// identity turned it into a domain event.
	billing, err := js.Stream(context.Background(), natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "billing.payment.succeeded from identity", func() bool {
		_, err := billing.GetLastMsgForSubject(context.Background(), "billing.payment.succeeded")
		return err == nil
	})
	// The customer's email arrives: crm syncs the contact to the HubSpot emulator.
	emailSet := filepath.Join(t.TempDir(), "customer.updated.json")
	if err := os.WriteFile(emailSet, testkit.StripeEvent(t, "customer.updated.email-set"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"send", "--webhook-url", "http://" + gw + "/webhooks/stripe", "--secret", secret, emailSet},
		os.Getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("send customer.updated: exit %d", code)
	}
	crmStream, err := js.Stream(context.Background(), natsbus.StreamCRM)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "crm.contact.synced from crm", func() bool {
		_, err := crmStream.GetLastMsgForSubject(context.Background(), "crm.contact.synced")
		return err == nil
	})
	// A failed payment: support opens a ticket in the Zendesk emulator.
	failed := filepath.Join(t.TempDir(), "invoice.payment_failed.json")
	if err := os.WriteFile(failed, testkit.StripeEvent(t, "invoice.payment_failed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"send", "--webhook-url", "http://" + gw + "/webhooks/stripe", "--secret", secret, failed},
		os.Getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("send invoice.payment_failed: exit %d", code)
	}
	supportStream, err := js.Stream(context.Background(), natsbus.StreamSupport)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "support.ticket.opened from support", func() bool {
		_, err := supportStream.GetLastMsgForSubject(context.Background(), "support.ticket.opened")
		return err == nil
	})
	// The projector shows where the customer stands, with the trace of
	// every step, on the status API.
	ops := "http://" + addr(10)
	var lastView string
	defer func() {
		if t.Failed() {
			t.Logf("last view: %s\n%s", lastView, stderr.String())
		}
	}()
	var view struct {
		ID     string   `json:"id"`
		States []string `json:"states"`
		CRM    struct {
			Status string `json:"status"`
		} `json:"crm"`
	}
	// The fixtures' failed attempt (created 1698249906) is an hour older than
	// the invoice's payment (1698253506): arriving last, it must not win.
	testkit.WaitFor(t, 20*time.Second, "the customer's view shows the ticket and the payment that came after the failure", func() bool {
		var res struct {
			Customers []json.RawMessage `json:"customers"`
		}
		if err := getJSON(ops+"/v1/customers?email=jenny.rosen@example.com", opsToken, &res); err != nil || len(res.Customers) != 1 {
			lastView = fmt.Sprint(err, res.Customers)
			return false
		}
		lastView = string(res.Customers[0])
		if err := json.Unmarshal(res.Customers[0], &view); err != nil {
			t.Fatal(err)
		}
		return slices.Equal(view.States, []string{"support ticket opened", "payment received"}) && view.CRM.Status == "synced"
	})
	var page struct {
		Entries []struct {
			Subject string `json:"subject"`
			TraceID string `json:"trace_id"`
		} `json:"entries"`
	}
	if err := getJSON(ops+"/v1/customers/"+view.ID+"/timeline", opsToken, &page); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range page.Entries {
		seen[e.Subject] = true
		if len(e.TraceID) != 32 {
			t.Errorf("timeline entry %s has no trace id", e.Subject)
		}
	}
	for _, want := range []string{"billing.payment.succeeded", "crm.contact.synced", "billing.payment.failed", "support.ticket.opened"} {
		if !seen[want] {
			t.Errorf("timeline lacks %s: %+v", want, page.Entries)
		}
	}
	// switchyard rebuild asks the running projector, with the token dev saved.
	out.Reset()
	if code := run(context.Background(), []string{"rebuild", "--ops", ops, "--data-dir", filepath.Join(data, "hub")}, func(string) string { return "" },
		nil, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "events/s") {
		t.Fatalf("switchyard rebuild: exit %d: %s", code, out.String())
	}
	// The projector's dead-letter actions are wired to the operator's NATS
	// identity (dev gives it the operator's password): an unknown dead
	// letter is 404, not the 503 of a read-only projector.
	req, _ := http.NewRequest(http.MethodPost, ops+"/v1/dead-letters/999999999/replay", nil)
	req.Header.Set("Authorization", "Bearer "+opsToken)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("replay of an unknown dead letter on the dev hub: %d %s, want 404 (the operator's connection in place)", resp.StatusCode, body)
		}
	}
	// switchyard trace follows the failed payment's Stripe event to its ticket.
	// crm syncs the contact again after the failure and support opens a
	// ticket; both are projected independently, so the trace converges.
	traceWants := []string{"jenny.rosen@example.com", "billing.payment.failed", "support.ticket.opened", "crm.contact.synced"}
	testkit.WaitFor(t, 20*time.Second, "switchyard trace shows the failure's ticket and CRM sync", func() bool {
		out.Reset()
		if code := run(context.Background(), []string{"trace", "--ops", ops, "--data-dir", filepath.Join(data, "hub"), "evt_1O5WElGgdF1VjufL5i2gHzqM"},
			func(string) string { return "" }, nil, &out, io.Discard); code != 0 {
			t.Fatalf("switchyard trace: exit %d: %s", code, out.String())
		}
		for _, want := range traceWants {
			if !strings.Contains(out.String(), want) {
				lastView = "switchyard trace output lacks " + want + ":\n" + out.String()
				return false
			}
		}
		return true
	})
	if regexp.MustCompile(`[0-9a-f]{32}`).FindString(out.String()) == "" {
		t.Errorf("switchyard trace shows no trace id:\n%s", out.String())
	}
	// switchyard status: healthy, with the intake and the gateway's counts.
	out.Reset()
	if code := run(context.Background(), []string{"status", "--ops", ops, "--data-dir", filepath.Join(data, "hub"), "--json"},
		func(string) string { return "" }, nil, &out, io.Discard); code != 0 {
		t.Fatalf("switchyard status: exit %d: %s", code, out.String())
	}
	var st struct {
		Healthy        bool             `json:"healthy"`
		IntakeLastHour int              `json:"intake_last_hour"`
		WebhookResults map[string]int64 `json:"webhook_results"`
		DLQTotal       int              `json:"dlq_total"`
		Tickets        int              `json:"tickets_24h"`
		TicketP50      float64          `json:"ticket_latency_p50_seconds"`
		TicketsTimed   int              `json:"tickets_timed_24h"`
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Healthy || st.IntakeLastHour != 3 || st.WebhookResults["accepted"] != 3 || st.WebhookResults["duplicate"] != 2 || st.DLQTotal != 0 {
		t.Errorf("switchyard status = %s", out.String())
	}
	// The fixtures were created at Stripe in 2023: a latency measured from
	// Stripe's created would be years; from the hub's receipt it is this run.
	if st.Tickets != 1 || st.TicketsTimed != 1 || st.TicketP50 <= 0 || st.TicketP50 > 120 {
		t.Errorf("switchyard status: %d tickets, ticket latency p50 %.0f s; want 1 ticket opened within this run (latency from receipt, not from the fixture's created)", st.Tickets, st.TicketP50)
	}
	// Secrets, whole emails and card-like data in a payload never reach a
	// log line; the correlation ids do.
	leaky := bytes.Replace(testkit.StripeEvent(t, "customer.updated.email-set"), []byte(`"metadata": {`),
		[]byte(`"metadata": {"note": "card 4242 4242 4242 4242 exp 12/34 cvc 123", "api_key": "sk_live_51LeakyKeyDoNotLog", "pan": "4000056655665556",`), 1)
	if !bytes.Contains(leaky, []byte("sk_live_51LeakyKeyDoNotLog")) {
		t.Fatal("the fixture has no metadata object to put the leaky data in")
	}
	leaky = bytes.Replace(leaky, []byte(`"id": "evt_`), []byte(`"id": "evt_leaky`), 1)
	leakyFile := filepath.Join(t.TempDir(), "leaky.json")
	if err := os.WriteFile(leakyFile, leaky, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"send", "--webhook-url", "http://" + gw + "/webhooks/stripe", "--secret", secret, leakyFile},
		os.Getenv, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("send the leaky event: exit %d", code)
	}
	testkit.WaitFor(t, 20*time.Second, "the leaky event projected", func() bool {
		var res struct {
			Customers []json.RawMessage `json:"customers"`
		}
		return getJSON(ops+"/v1/customers?stripe_event_id=evt_leaky"+strings.TrimPrefix(reFixtureEventID(leaky), "evt_leaky"), opsToken, &res) == nil && len(res.Customers) == 1
	})
	logs := stderr.String()
	for _, secretish := range []string{secret, opsToken, "sk_live_51LeakyKeyDoNotLog", "4242 4242 4242 4242", "4242424242424242", "4000056655665556",
		"jenny.rosen@example.com", "cvc 123"} {
		if strings.Contains(logs, secretish) {
			i := strings.Index(logs, secretish)
			t.Errorf("a log line contains %q: …%s…", secretish, logs[max(0, i-200):min(len(logs), i+100)])
		}
	}
	for _, key := range []string{`"request_id":"`, `"event_id":"`, `"customer_id":"`, `"trace_id":"`} {
		if !strings.Contains(logs, key) {
			t.Errorf("no log line carries %s", key)
		}
	}

	// Every service's /metrics has the product's metrics, with units in
	// their names and bounded labels.
	checkMetrics(t, map[string]string{
		"gateway": gwAdmin, "identity": addr(2), "crm": addr(3), "support": addr(5), "alerts": addr(7), "projector": addr(9),
	})
	nc.Close()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("dev exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not exit within 30s of SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(data, "hub", "postgres", "postmaster.pid")); !os.IsNotExist(err) {
		t.Errorf("private PostgreSQL still running after stop (postmaster.pid: %v)", err)
	}
}

func getJSON(url, token string, v any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// requiredMetrics are the product spec's metrics, per service (Prometheus
// names: counters end in _total, durations are in seconds).
var requiredMetrics = map[string][]string{
	"gateway": {`switchyard_gateway_webhooks_received_total{result="accepted"}`, `switchyard_gateway_webhooks_received_total{result="duplicate"}`,
		"switchyard_gateway_ack_latency_seconds_bucket"},
	"identity": {`switchyard_consumer_processed_total{consumer="identity",result="ack"}`, `switchyard_consumer_failed_total{class="permanent",consumer="identity"}`,
		`switchyard_consumer_redelivered_total{consumer="identity"}`, `switchyard_consumer_lag{consumer="identity",stream="STRIPE"}`,
		"switchyard_consumer_handle_duration_seconds_bucket", `switchyard_identity_events_published_total{subject="billing.payment.succeeded"}`},
	"crm": {`switchyard_crm_sync_total{result="synced"}`, `switchyard_crm_sync_total{result="failed"}`, `switchyard_consumer_lag{consumer="crm",stream="BILLING"}`},
	"support": {`switchyard_support_tickets_total{result="opened"}`, "switchyard_support_ticket_latency_seconds_bucket",
		`switchyard_consumer_lag{consumer="support",stream="BILLING"}`},
	"alerts": {`switchyard_consumer_lag{consumer="alerts",stream="DLQ"}`},
	"projector": {`switchyard_dlq_depth{class="permanent"}`, "switchyard_open_failures", "switchyard_dlq_bytes", "switchyard_dlq_max_bytes", `switchyard_ops_manual_actions_total{action="replay"}`,
		"switchyard_projector_batch_restarts_total", `switchyard_consumer_lag{consumer="projector",stream="SUPPORT"}`, `switchyard_consumer_lag{consumer="projector",stream="BILLING"}`, `switchyard_consumer_lag{consumer="projector",stream="CRM"}`},
}

// allowedLabels bounds every switchyard_ series' label names; ids, emails
// and amounts never become label values.
var (
	allowedLabels = map[string]bool{"consumer": true, "stream": true, "result": true, "class": true, "rule": true, "action": true, "subject": true,
		"api_version": true, "livemode": true, "le": true, "otel_scope_name": true, "otel_scope_version": true, "otel_scope_schema_url": true}
	unboundedValue = regexp.MustCompile(`(^|[^a-z])(evt|cus|cust|in|ch|pi|sub|re|dp)_[A-Za-z0-9]{6,}|@|^[0-9]{3,}$`)
	seriesLine     = regexp.MustCompile(`^(switchyard_[a-z_]+)\{([^}]*)\} `)
	labelPair      = regexp.MustCompile(`([a-z_]+)="((?:[^"\\]|\\.)*)"`)
)

func checkMetrics(t *testing.T, addrs map[string]string) {
	t.Helper()
	for svc, a := range addrs {
		resp, err := http.Get("http://" + a + "/metrics")
		if err != nil {
			t.Fatalf("%s /metrics: %v", svc, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text := string(body)
		for _, want := range requiredMetrics[svc] {
			name, labels, _ := strings.Cut(want, "{")
			found := false
			for _, line := range strings.Split(text, "\n") {
				if !strings.HasPrefix(line, name) {
					continue
				}
				ok := true
				for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
					if l != "" && !strings.Contains(line, l) {
						ok = false
					}
				}
				if ok {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s /metrics lacks %s", svc, want)
			}
		}
		for _, line := range strings.Split(text, "\n") {
			m := seriesLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			for _, lp := range labelPair.FindAllStringSubmatch(m[2], -1) {
				if !allowedLabels[lp[1]] {
					t.Errorf("%s: %s has label %q outside the bounded set", svc, m[1], lp[1])
				}
				if lp[1] != "le" && unboundedValue.MatchString(lp[2]) {
					t.Errorf("%s: %s label %s=%q looks unbounded (an id, email or number)", svc, m[1], lp[1], lp[2])
				}
			}
		}
	}
}

// reFixtureEventID returns the event id in a Stripe event JSON.
func reFixtureEventID(raw []byte) string {
	var ev struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &ev)
	return ev.ID
}

// startDevInProcess runs `switchyard <args>` (dev) in this process with
// env until its banner, within timeout, and returns its output and a func
// that stops it as Ctrl-C does and checks it exited 0 (also run at the
// test's end, if not called before).
func startDevInProcess(t *testing.T, args []string, env func(string) string, timeout time.Duration) (stdout *lockedBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout = &lockedBuffer{}
	var stderr lockedBuffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, env, nil, stdout, &stderr) }()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(stdout.String(), "dev hub is running") {
		select {
		case code := <-exited:
			cancel()
			t.Fatalf("dev exited with %d before its banner:\n%s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner within %s:\n%s", timeout, stderr.String())
		}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if code := <-exited; code != 0 {
				t.Errorf("dev exited with %d:\n%s", code, stderr.String())
			}
		})
	}
	t.Cleanup(stop)
	return stdout, stop
}

func TestDevRefusesUnknownVendorLimits(t *testing.T) {
	var errOut bytes.Buffer
	dir := filepath.Join(t.TempDir(), "hub")
	if code := run(context.Background(), []string{"dev", "--data-dir", dir, "--vendor-limits", "unlimited"}, func(string) string { return "" }, nil, io.Discard, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "want plan or none") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dev created %s before refusing its flags", dir)
	}
}

// TestDevKeepsEmulatorAccountsAcrossRestarts is `make run` three times on
// one data folder: the contact and ticket made in the first run are still in
// the emulators in the second (PostgreSQL still links them) and new ones get
// higher ids; the third starts with no emulator state, as after a kill -9
// before any write, and still issues no id seen before. dev runs in-process
// against the test's NATS and PostgreSQL, so only the services start.
func TestDevKeepsEmulatorAccountsAcrossRestarts(t *testing.T) {
	b := testkit.NATS(t)
	env := config.MapEnv(map[string]string{"NATS_URL": b.URL, "DATABASE_URL": testkit.Postgres(t), "LOG_LEVEL": "warn"})
	data := filepath.Join(t.TempDir(), "hub")
	ports := freePorts(t, 11)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	args := []string{"dev", "--data-dir", data, "--gateway-addr", addr(0), "--gateway-admin-addr", addr(10), "--identity-addr", addr(1), "--crm-addr", addr(2),
		"--hubspot-addr", addr(3), "--support-addr", addr(4), "--zendesk-addr", addr(5), "--alerts-addr", addr(6),
		"--slack-addr", addr(7), "--projector-addr", addr(8), "--ops-addr", addr(9)}
	hubspot, zendesk := "http://"+addr(3), "http://"+addr(5)

	devRun := func() (stop func()) {
		t.Helper()
		stdout, stop := startDevInProcess(t, args, env, 60*time.Second)
		if !strings.Contains(stdout.String(), filepath.Join(data, "emulators")) {
			t.Errorf("the banner does not say where the emulators' state is:\n%s", stdout.String())
		}
		return stop
	}

	stop := devRun()
	ada := upsertContact(t, hubspot, "ada@example.com")
	ticket := openTicket(t, zendesk, "ada@example.com")
	stop()

	stop = devRun()
	var got struct {
		ID string `json:"id"`
	}
	if err := getJSON(hubspot+"/crm/v3/objects/contacts/ada@example.com?idProperty=email", "pat-test", &got); err != nil || got.ID != ada {
		t.Errorf("after the restart, ada's contact is %q (%v), want %s", got.ID, err, ada)
	}
	var tk struct {
		Ticket devTicket `json:"ticket"`
	}
	if err := getZendesk(zendesk+"/api/v2/tickets/"+strconv.FormatInt(ticket.ID, 10)+".json", &tk); err != nil || tk.Ticket != ticket {
		t.Errorf("after the restart, ticket %d is %+v (%v)", ticket.ID, tk.Ticket, err)
	}
	grace := upsertContact(t, hubspot, "grace@example.com")
	if contactNumber(t, grace) <= contactNumber(t, ada) {
		t.Errorf("a new contact got id %s after the restart, want above %s", grace, ada)
	}
	next := openTicket(t, zendesk, "grace@example.com")
	if next.ID <= ticket.ID || next.RequesterID == ticket.RequesterID {
		t.Errorf("a new ticket after the restart is %+v, want an id above %d and a new requester", next, ticket.ID)
	}
	stop()

	// A kill -9 before the emulators wrote anything: no state at all. The
	// database still links every id issued so far, so none may come back.
	if err := os.RemoveAll(filepath.Join(data, "emulators")); err != nil {
		t.Fatal(err)
	}
	stop = devRun()
	defer stop()
	if alan := upsertContact(t, hubspot, "alan@example.com"); alan == ada || alan == grace {
		t.Errorf("after a restart without state, a new contact got the earlier id %s", alan)
	}
	if last := openTicket(t, zendesk, "alan@example.com"); last.ID == ticket.ID || last.ID == next.ID ||
		last.RequesterID == ticket.RequesterID || last.RequesterID == next.RequesterID {
		t.Errorf("after a restart without state, a new ticket %+v reuses an earlier ticket or user id (%+v, %+v)", last, ticket, next)
	}
}

// upsertContact creates or updates a contact by email in a HubSpot
// emulator and returns its record id.
func upsertContact(t *testing.T, base, email string) string {
	t.Helper()
	body := `{"inputs":[{"idProperty":"email","id":"` + email + `","properties":{"firstname":"Test"}}]}`
	req, _ := http.NewRequest(http.MethodPost, base+"/crm/v3/objects/contacts/batch/upsert", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer pat-test")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || len(out.Results) != 1 {
		t.Fatalf("upsert %s: %s %v %+v", email, resp.Status, err, out)
	}
	return out.Results[0].ID
}

func contactNumber(t *testing.T, id string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("contact id %q: %v", id, err)
	}
	return n
}

// devTicket is what TestDevKeepsEmulatorAccountsAcrossRestarts compares.
type devTicket struct {
	ID          int64 `json:"id"`
	RequesterID int64 `json:"requester_id"`
}

// openTicket opens a ticket in the dev hub's Zendesk emulator.
func openTicket(t *testing.T, base, requester string) devTicket {
	t.Helper()
	body := `{"ticket":{"subject":"Payment failed","comment":{"body":"Invoice failed."},"requester":{"name":"Customer","email":"` + requester + `"}}}`
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v2/tickets.json", strings.NewReader(body))
	req.SetBasicAuth(devZendeskEmail+"/token", devZendeskToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Ticket devTicket `json:"ticket"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("open ticket: %s %v", resp.Status, err)
	}
	return out.Ticket
}

func getZendesk(url string, v any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(devZendeskEmail+"/token", devZendeskToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func TestDevRefusesBadReplicas(t *testing.T) {
	for _, v := range []string{"gateway=2", "identity=0", "identity=two", "identity", "crm=17"} {
		var errOut bytes.Buffer
		dir := filepath.Join(t.TempDir(), "hub")
		if code := run(context.Background(), []string{"dev", "--data-dir", dir, "--replicas", v}, func(string) string { return "" }, nil, io.Discard, &errOut); code != 2 ||
			!strings.Contains(errOut.String(), "want service=count") {
			t.Errorf("--replicas %s: exit %d: %s", v, code, errOut.String())
		}
	}
	got, err := parseReplicas("identity=2, crm=3")
	if err != nil || got["identity"] != 2 || got["crm"] != 3 || len(got) != 2 {
		t.Errorf("parseReplicas: %v, %v", got, err)
	}
}
