package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/gateway"
)

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		maxPayload int64
		want       int
		wantErr    string
	}{
		{name: "NATS default 1 MiB leaves room for the headers", maxPayload: 1 << 20, want: 1<<20 - gateway.HeaderAllowance},
		{name: "a larger server is capped at MaxBodyBytes", maxPayload: 8 << 20, want: gateway.MaxBodyBytes},
		{name: "just enough", maxPayload: gateway.MinBodyLimit + gateway.HeaderAllowance, want: gateway.MinBodyLimit},
		{name: "too small to start", maxPayload: 128 << 10, wantErr: "max_payload is 131072 bytes"},
		{name: "smaller than the headers", maxPayload: 1024, wantErr: "raise max_payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := gateway.BodyLimit(tt.maxPayload)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("BodyLimit(%d) = %d, %v; want an error containing %q", tt.maxPayload, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("BodyLimit(%d) = %d, %v; want %d", tt.maxPayload, got, err, tt.want)
			}
		})
	}
}

// padded returns a valid event of exactly size bytes: JSON whitespace before
// its closing brace.
func padded(t *testing.T, id string, size int) []byte {
	t.Helper()
	b := bytes.TrimRight(event(t, "customer.created", id), " \n")
	if len(b) > size || b[len(b)-1] != '}' {
		t.Fatalf("fixture of %d bytes cannot be padded to %d", len(b), size)
	}
	out := make([]byte, 0, size)
	out = append(out, b[:len(b)-1]...)
	out = append(out, bytes.Repeat([]byte(" "), size-len(b))...)
	return append(out, '}')
}

// TestBodyTheStoreCannotHoldIs413 runs against an embedded server whose
// max_payload is 1 MiB (NATS's default): a signed body of exactly 1 MiB
// cannot be stored with the gateway's headers, so every delivery of it is
// answered 413 and counted as payload_too_large — it used to be 503 on
// every one of Stripe's retries, for three days. A body at the limit the
// gateway derived from max_payload is stored.
func TestBodyTheStoreCannotHoldIs413(t *testing.T) {
	b := testkit.NATS(t)
	nc, _ := b.Connect(t)
	if nc.MaxPayload() != 1<<20 {
		t.Fatalf("embedded server max_payload = %d, want 1 MiB", nc.MaxPayload())
	}
	h := startHubOn(t, b, nil)

	huge := padded(t, "evt_toolarge000001", 1<<20)
	for i := range 3 {
		got := h.post(t, huge, sign(huge, secret))
		if got.Status != http.StatusRequestEntityTooLarge || errorCode(got) != "payload_too_large" {
			t.Fatalf("delivery %d of a 1 MiB body: %d %v, want 413 payload_too_large", i+1, got.Status, got.Body)
		}
		if got.Header.Get("Retry-After") != "" {
			t.Errorf("413 with Retry-After: nothing changes by waiting")
		}
	}

	limit := 1<<20 - gateway.HeaderAllowance
	atLimit := padded(t, "evt_atthelimit0001", limit)
	if got := h.post(t, atLimit, sign(atLimit, secret)); got.Status != http.StatusOK {
		t.Fatalf("a body of exactly the limit (%d bytes): %d %v, want 200", limit, got.Status, got.Body)
	}
	over := padded(t, "evt_overthelimit01", limit+1)
	if got := h.post(t, over, sign(over, secret)); got.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body one byte over the limit: %d %v, want 413", got.Status, got.Body)
	}

	// Within the limit, but an outsized (still valid) signature header
	// would take the message over max_payload: measured, 413, not 503.
	again := padded(t, "evt_atthelimit0002", limit)
	if got := h.post(t, again, sign(again, secret)+",v0="+strings.Repeat("0", 8<<10)); got.Status != http.StatusRequestEntityTooLarge || errorCode(got) != "payload_too_large" {
		t.Fatalf("a body at the limit with an 8 KiB signature header: %d %v, want 413 payload_too_large", got.Status, got.Body)
	}

	if n := h.streamMsgs(t); n != 1 {
		t.Fatalf("stream %s holds %d messages, want only the one at the limit", natsbus.StreamStripe, n)
	}
	metrics := get(t, h.admin+"/metrics")
	for _, want := range []string{
		`switchyard_gateway_webhooks_received_total{result="payload_too_large"} 5`,
		`switchyard_gateway_webhooks_received_total{result="store_unavailable"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestRefusesServerTooSmallForWebhooks: on a NATS server whose max_payload
// leaves less than MinBodyLimit for a body, the gateway does not start, and
// says what to change.
func TestRefusesServerTooSmallForWebhooks(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		MaxPayload: 128 << 10, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); err != nil { // as a deploy would
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	err = gateway.Run(ctx, config.MapEnv(map[string]string{
		"GATEWAY_ADDR": freeAddr(t), "GATEWAY_ADMIN_ADDR": freeAddr(t), "NATS_URL": s.ClientURL(), "STRIPE_WEBHOOK_SECRET": secret,
	}), logs)
	if err == nil || !strings.Contains(err.Error(), "max_payload is 131072 bytes") || !strings.Contains(err.Error(), fmt.Sprint(gateway.MinBodyLimit+gateway.HeaderAllowance)) {
		t.Fatalf("Run = %v, want a refusal naming the server's max_payload and what it must be", err)
	}
}
