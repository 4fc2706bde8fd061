package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/stripesig"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/gateway"
)

const (
	secret  = "whsec_test_secret"
	rotated = "whsec_test_secret_rolled_key"
)

// hub is a gateway started through gateway.Run against an embedded broker.
type hub struct {
	url    string // the public listener: the webhook and liveness
	admin  string // the admin listener: readiness, metrics, webhook-health
	broker *testkit.Broker
	js     jetstream.JetStream
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }

func startHub(t *testing.T, env map[string]string) *hub {
	t.Helper()
	b := testkit.NATS(t)
	return startHubOn(t, b, env)
}

func startHubOn(t *testing.T, b *testkit.Broker, env map[string]string) *hub {
	t.Helper()
	addr := freeAddr(t)
	base := map[string]string{
		"GATEWAY_ADDR":            addr,
		"GATEWAY_ADMIN_ADDR":      freeAddr(t),
		"NATS_URL":                b.URL,
		"STRIPE_WEBHOOK_SECRET":   secret,
		"SWITCHYARD_ENV":          "development",
		"GATEWAY_PUBLISH_TIMEOUT": "2s",
		"LOG_LEVEL":               "debug",
	}
	for k, v := range env {
		base[k] = v
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.Run(ctx, config.MapEnv(base), logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway.Run returned %v after shutdown", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop within 15s of cancellation")
		}
	})
	h := &hub{url: "http://" + addr, admin: "http://" + base["GATEWAY_ADMIN_ADDR"], broker: b, logs: logs}
	_, h.js = b.Connect(t)
	testkit.WaitFor(t, 10*time.Second, "gateway ready", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("gateway.Run exited early: %v\n%s", err, logs)
		default:
		}
		resp, err := http.Get(h.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return h
}

type response struct {
	Status int
	Body   map[string]any
	Header http.Header
}

func (h *hub) post(t *testing.T, body []byte, header string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if header != "" {
		req.Header.Set("Stripe-Signature", header)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("response is not JSON (%d): %q", resp.StatusCode, raw)
	}
	return r
}

func errorCode(r response) string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (h *hub) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	s, err := h.js.Stream(context.Background(), natsbus.StreamStripe)
	if err != nil {
		t.Fatalf("stream %s: %v", natsbus.StreamStripe, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func sign(body []byte, secrets ...string) string {
	return stripesig.Sign(body, time.Now(), secrets...)
}

// event returns a fixture with a fresh event id, so each test owns its events.
func event(t *testing.T, name, id string) []byte {
	t.Helper()
	b := testkit.StripeEvent(t, name)
	var env struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	return bytes.Replace(b, []byte(`"`+env.ID+`"`), []byte(`"`+id+`"`), 1)
}

func TestBadInputIsRejectedAndLeavesNoTrace(t *testing.T) {
	h := startHub(t, nil)
	good := event(t, "customer.created", "evt_badinput00001")
	mutate := func(from, to string) []byte {
		t.Helper()
		if !bytes.Contains(good, []byte(from)) {
			t.Fatalf("fixture lacks %q", from)
		}
		return bytes.Replace(good, []byte(from), []byte(to), 1)
	}
	now := time.Now()
	tests := []struct {
		name     string
		method   string
		body     []byte
		header   string // "" = sign body with secret now
		noHeader bool
		status   int
		code     string
	}{
		{name: "no signature header", body: good, noHeader: true, status: 400, code: "signature_missing"},
		{name: "wrong secret", body: good, header: sign(good, "whsec_not_the_secret"), status: 400, code: "signature_invalid"},
		{name: "tampered body", body: mutate(`"balance": 0`, `"balance": 1`), header: sign(good, secret), status: 400, code: "signature_invalid"},
		{name: "stale timestamp", body: good, header: stripesig.Sign(good, now.Add(-6*time.Minute), secret), status: 400, code: "signature_expired"},
		{name: "future timestamp", body: good, header: stripesig.Sign(good, now.Add(6*time.Minute), secret), status: 400, code: "signature_from_future"},
		{name: "malformed header", body: good, header: "v1,t=1", status: 400, code: "signature_malformed"},
		{name: "non-numeric timestamp", body: good, header: "t=abc,v1=00", status: 400, code: "signature_malformed"},
		{name: "non-JSON body", body: []byte("not json at all"), status: 400, code: "invalid_json"},
		{name: "JSON array", body: []byte(`[1,2,3]`), status: 400, code: "invalid_json"},
		{name: "empty body", body: []byte{}, status: 400, code: "invalid_json"},
		{name: "oversized body", body: append(bytes.Repeat([]byte(" "), gateway.MaxBodyBytes), good...), status: 413, code: "payload_too_large"},
		{name: "missing id", body: mutate(`"id": "evt_badinput00001",`, ``), status: 422, code: "invalid_event"},
		{name: "invalid id", body: mutate(`"evt_badinput00001"`, `"ch_notanevent1"`), status: 422, code: "invalid_event"},
		{name: "missing type", body: mutate(`"type": "customer.created"`, `"kind": "customer.created"`), status: 422, code: "invalid_event"},
		{name: "invalid type", body: mutate(`"type": "customer.created"`, `"type": "Customer Created!"`), status: 422, code: "invalid_event"},
		{name: "missing created", body: mutate(`"created": 1698249600,
  "data"`, `"data"`), status: 422, code: "invalid_event"},
		{name: "created not an integer", body: mutate(`"created": 1698249600,
  "data"`, `"created": "yesterday",
  "data"`), status: 422, code: "invalid_event"},
		{name: "wrong object kind for type", body: mutate(`"object": "customer"`, `"object": "invoice"`), status: 422, code: "invalid_event"},
		{name: "invalid currency", body: mutate(`"currency": "usd"`, `"currency": "US Dollars"`), status: 422, code: "invalid_event"},
		{name: "invalid email", body: mutate(`"email": null`, `"email": "not-an-email"`), status: 422, code: "invalid_event"},
		{name: "livemode true on a development hub", body: livemode(good), status: 403, code: "livemode_rejected"},
		{name: "object livemode differs from event", body: mutate(`"livemode": false`, `"livemode": true`), status: 422, code: "invalid_event"},
		{name: "GET instead of POST", method: http.MethodGet, body: good, status: 405, code: "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if header == "" && !tt.noHeader {
				header = sign(tt.body, secret)
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req, _ := http.NewRequest(method, h.url+"/webhooks/stripe", bytes.NewReader(tt.body))
			if header != "" {
				req.Header.Set("Stripe-Signature", header)
			}
			got := do(t, req)
			if got.Status != tt.status || errorCode(got) != tt.code {
				t.Fatalf("got %d %q (%v), want %d %q", got.Status, errorCode(got), got.Body, tt.status, tt.code)
			}
			if got.Body["request_id"] == "" || got.Header.Get("X-Request-Id") == "" {
				t.Errorf("error lacks a request id: %v", got.Body)
			}
		})
	}
	if n := h.streamMsgs(t); n != 0 {
		t.Fatalf("stream %s holds %d messages after only bad input, want 0", natsbus.StreamStripe, n)
	}
	// The same body, correctly signed, is accepted: the cases above failed
	// for the reason they name, not because the fixture was unusable.
	if got := h.post(t, good, sign(good, secret)); got.Status != 200 {
		t.Fatalf("control event: %d %v", got.Status, got.Body)
	}
	if n := h.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages after the control event, want 1", n)
	}
}

func TestConcurrentDuplicatesStoreOneMessage(t *testing.T) {
	h := startHub(t, nil)
	body := event(t, "invoice.paid", "evt_dup0000000001")
	header := sign(body, secret)
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	dups := make([]bool, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.post(t, body, header)
			statuses[i] = r.Status
			dups[i], _ = r.Body["duplicate"].(bool)
		}()
	}
	wg.Wait()
	nDup := 0
	for i, s := range statuses {
		if s != 200 {
			t.Errorf("request %d: status %d, want 200", i, s)
		}
		if dups[i] {
			nDup++
		}
	}
	if nDup != 9 {
		t.Errorf("%d responses flagged duplicate, want 9", nDup)
	}
	if n := h.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages, want exactly 1", n)
	}
}

func TestStoreUnavailableAnswers503ThenRetryLands(t *testing.T) {
	h := startHub(t, nil)
	body := event(t, "invoice.payment_failed", "evt_outage00000001")
	h.broker.Shutdown()
	got := h.post(t, body, sign(body, secret))
	if got.Status != http.StatusServiceUnavailable || errorCode(got) != "store_unavailable" {
		t.Fatalf("with NATS down: %d %v, want 503 store_unavailable", got.Status, got.Body)
	}
	if got.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	resp, err := http.Get(h.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz during outage = %d, want 503", resp.StatusCode)
	}

	h.broker.Restart()
	_, h.js = h.broker.Connect(t)
	if n := h.streamMsgs(t); n != 0 {
		t.Fatalf("stream holds %d messages after a 503, want 0 (nothing claimed)", n)
	}
	// Stripe retries; once the gateway has reconnected, the retry lands.
	testkit.WaitFor(t, 15*time.Second, "retry accepted after recovery", func() bool {
		return h.post(t, body, sign(body, secret)).Status == 200
	})
	if n := h.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d messages after recovery, want 1", n)
	}
}

func TestRotationAcceptsEitherSecret(t *testing.T) {
	h := startHub(t, map[string]string{"STRIPE_WEBHOOK_SECRET": secret + "," + rotated})
	for i, s := range []string{secret, rotated} {
		body := event(t, "customer.updated", fmt.Sprintf("evt_rotation0000%d", i))
		if got := h.post(t, body, sign(body, s)); got.Status != 200 {
			t.Errorf("signed with secret %d: %d %v", i+1, got.Status, got.Body)
		}
	}
	// During a roll Stripe sends both signatures in one header.
	body := event(t, "customer.updated", "evt_rotation00both")
	if got := h.post(t, body, sign(body, "whsec_retired_secret", rotated)); got.Status != 200 {
		t.Errorf("header with an unknown and a known signature: %d %v", got.Status, got.Body)
	}
	if n := h.streamMsgs(t); n != 3 {
		t.Fatalf("stream holds %d messages, want 3", n)
	}
}

// TestRotationFromSecretsFile: STRIPE_WEBHOOK_SECRET_FILE holds one secret
// per line during a rotation; blank lines and surrounding spaces are
// ignored, and each secret verifies on its own.
func TestRotationFromSecretsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stripe_webhook_secret")
	if err := os.WriteFile(file, []byte("\n  "+secret+"  \n\n"+rotated+"\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, map[string]string{"STRIPE_WEBHOOK_SECRET": "", "STRIPE_WEBHOOK_SECRET_FILE": file})
	for i, s := range []string{secret, rotated} {
		body := event(t, "customer.updated", fmt.Sprintf("evt_rotfile00000%d", i))
		if got := h.post(t, body, sign(body, s)); got.Status != 200 {
			t.Errorf("signed with line %d of the secrets file: %d %v", i+1, got.Status, got.Body)
		}
	}
	body := event(t, "customer.updated", "evt_rotfile0000bad")
	if got := h.post(t, body, sign(body, "whsec_not_in_the_file")); got.Status != 400 {
		t.Errorf("signed with a secret not in the file: %d %v, want 400", got.Status, got.Body)
	}
}

func TestFixturesStoredExactlyWithHeaders(t *testing.T) {
	h := startHub(t, nil)
	names := testkit.StripeEventNames(t)
	if len(names) < 10 {
		t.Fatalf("only %d fixtures found", len(names))
	}
	sent := map[string][]byte{}
	for _, name := range names {
		body := testkit.StripeEvent(t, name) // unmodified bytes
		var env struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatal(err)
		}
		header := sign(body, secret)
		got := h.post(t, body, header)
		if got.Status != 200 || got.Body["id"] != env.ID {
			t.Fatalf("%s: %d %v", name, got.Status, got.Body)
		}
		sent[env.ID] = body

		s, _ := h.js.Stream(context.Background(), natsbus.StreamStripe)
		msg, err := s.GetLastMsgForSubject(context.Background(), wire.StripeEventSubject(env.Type))
		if err != nil {
			t.Fatalf("%s: no message on %s: %v", name, wire.StripeEventSubject(env.Type), err)
		}
		if !bytes.Equal(msg.Data, body) {
			t.Errorf("%s: stored bytes differ from the request body", name)
		}
		for k, want := range map[string]string{
			wire.HeaderMsgID: env.ID, wire.HeaderEventType: env.Type, wire.HeaderSignature: header,
			wire.HeaderAPIVersion: "2023-10-16", wire.HeaderLivemode: "false", wire.HeaderVersionStatus: "pinned",
		} {
			if got := msg.Header.Get(k); got != want {
				t.Errorf("%s: header %s = %q, want %q", name, k, got, want)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, msg.Header.Get(wire.HeaderReceivedAt)); err != nil {
			t.Errorf("%s: %s: %v", name, wire.HeaderReceivedAt, err)
		}
		if !strings.HasPrefix(msg.Header.Get(wire.HeaderRequestID), "req_") {
			t.Errorf("%s: request id header %q", name, msg.Header.Get(wire.HeaderRequestID))
		}
		// Audit: the stored signature header re-verifies the stored bytes.
		v, _ := stripesig.NewVerifier([]string{secret}, 0, nil)
		if _, err := v.Verify(msg.Data, msg.Header.Get(wire.HeaderSignature)); err != nil {
			t.Errorf("%s: stored event does not re-verify: %v", name, err)
		}
	}
	if n := h.streamMsgs(t); n != uint64(len(sent)) {
		t.Fatalf("stream holds %d messages, want %d", n, len(sent))
	}
}

func TestAPIVersionMismatchAcceptedAndCounted(t *testing.T) {
	h := startHub(t, nil)
	body := testkit.StripeFile(t, "event.json") // api_version 2020-08-27
	if !bytes.Contains(body, []byte(`"2020-08-27"`)) {
		t.Fatal("fixture event.json no longer carries api_version 2020-08-27")
	}
	got := h.post(t, body, sign(body, secret))
	if got.Status != 200 {
		t.Fatalf("version-mismatched event: %d %v, want 200", got.Status, got.Body)
	}
	s, _ := h.js.Stream(context.Background(), natsbus.StreamStripe)
	msg, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(wire.HeaderVersionStatus) != "mismatch" || msg.Header.Get(wire.HeaderAPIVersion) != "2020-08-27" {
		t.Errorf("headers %v, want version mismatch recorded", msg.Header)
	}
	metrics := get(t, h.admin+"/metrics")
	for _, want := range []string{
		`switchyard_gateway_api_version_mismatch_total{api_version="2020-08-27"} 1`,
		`switchyard_gateway_webhooks_received_total{result="accepted"} 1`,
		`switchyard_gateway_ack_latency_seconds_count 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// livemode turns a test-mode fixture into a live-mode one (event and object).
func livemode(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte(`"livemode": false`), []byte(`"livemode": true`))
}

func TestEnvironmentGuard(t *testing.T) {
	live := livemode(event(t, "customer.created", "evt_livemode000001"))
	test := event(t, "customer.created", "evt_testmode000001")
	tests := []struct {
		env        string
		liveStatus int
		testStatus int
	}{
		{"production", 200, 403},
		{"staging", 403, 200},
		{"development", 403, 200},
	}
	b := testkit.NATS(t)
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			h := startHubOn(t, b, map[string]string{"SWITCHYARD_ENV": tt.env})
			if got := h.post(t, live, sign(live, secret)); got.Status != tt.liveStatus {
				t.Errorf("livemode=true: %d %v, want %d", got.Status, got.Body, tt.liveStatus)
			}
			if got := h.post(t, test, sign(test, secret)); got.Status != tt.testStatus {
				t.Errorf("livemode=false: %d %v, want %d", got.Status, got.Body, tt.testStatus)
			}
			if !strings.Contains(get(t, h.admin+"/metrics"), "switchyard_gateway_livemode_rejected_total") {
				t.Error("livemode rejection not counted")
			}
		})
	}
}

func TestWebhookHealthShowsStalledConsumerAndDLQ(t *testing.T) {
	h := startHub(t, map[string]string{"GATEWAY_CONSUMER_STALL_AFTER": "1s", "STRIPE_WEBHOOK_SECRET": secret + "," + rotated})
	ctx := context.Background()
	// The migrated identity consumer, with no identity service running to
	// fetch: the shape of a stalled service.
	for i := 0; i < 3; i++ {
		body := event(t, "invoice.paid", fmt.Sprintf("evt_health00000%d", i))
		if got := h.post(t, body, sign(body, secret)); got.Status != 200 {
			t.Fatal(got)
		}
	}
	if _, err := h.js.Publish(ctx, "dlq.identity", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	var rep gateway.WebhookHealth
	var c gateway.ConsumerHealth
	testkit.WaitFor(t, 10*time.Second, "consumer reported stalled", func() bool {
		resp, err := http.Get(h.admin + "/api/stripe/webhook-health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		rep = gateway.WebhookHealth{}
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rep.Consumers, func(c gateway.ConsumerHealth) bool { return c.Stream == natsbus.StreamStripe })
		if i < 0 {
			return false
		}
		c = rep.Consumers[i]
		return c.Stalled
	})
	if c.Name != "identity" || c.Pending != 3 {
		t.Errorf("consumer %+v, want identity on STRIPE with 3 pending", c)
	}
	for _, other := range rep.Consumers {
		if other.Stream == natsbus.StreamStripe && other.Name != "identity" {
			t.Errorf("consumer %+v on STRIPE: only identity's is migrated there", other)
		}
	}
	if rep.DLQDepth != 1 || rep.Status != "degraded" || !rep.NATSConnected || rep.SecretsConfigured != 2 {
		t.Errorf("report %+v", rep)
	}
	if rep.LastEventReceivedAt == nil || time.Since(*rep.LastEventReceivedAt) > time.Minute {
		t.Errorf("last_event_received_at = %v", rep.LastEventReceivedAt)
	}
	for name, s := range rep.Streams {
		if !s.Present {
			t.Errorf("stream %s not present", name)
		}
	}
	raw := get(t, h.admin+"/api/stripe/webhook-health")
	if strings.Contains(raw, secret) || strings.Contains(raw, rotated) {
		t.Fatal("webhook-health leaks a secret")
	}
}

func TestLogsCarryIDsButNoSecretsOrPayloads(t *testing.T) {
	h := startHub(t, nil)
	body := event(t, "customer.updated.email-set", "evt_logs0000000001")
	if got := h.post(t, body, sign(body, "whsec_wrong_secret_value")); got.Status != 400 {
		t.Fatal(got)
	}
	if got := h.post(t, body, sign(body, secret)); got.Status != 200 {
		t.Fatal(got)
	}
	logs := h.logs.String()
	for _, leak := range []string{secret, "whsec_wrong_secret_value", "jenny.rosen@example.com", `"object": "customer"`} {
		if strings.Contains(logs, leak) {
			t.Errorf("logs contain %q", leak)
		}
	}
	if !strings.Contains(logs, `"request_id":"req_`) {
		t.Errorf("logs lack request_id:\n%s", logs)
	}
}

func TestConfigErrorsAreReportedTogether(t *testing.T) {
	_, err := gateway.LoadConfig(config.MapEnv(map[string]string{
		"STRIPE_WEBHOOK_SECRET": "not-a-secret", "SWITCHYARD_ENV": "prod", "GATEWAY_PUBLISH_TIMEOUT": "soon",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"STRIPE_WEBHOOK_SECRET", "SWITCHYARD_ENV", "GATEWAY_PUBLISH_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "not-a-secret") {
		t.Error("config error echoes the secret value")
	}
	_, err = gateway.LoadConfig(config.MapEnv(nil))
	if err == nil || !strings.Contains(err.Error(), "STRIPE_WEBHOOK_SECRET") {
		t.Errorf("missing secret: %v", err)
	}
	if errors.Is(err, nil) {
		t.Fatal("unreachable")
	}
}
