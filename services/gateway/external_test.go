package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/testkit"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/gateway"
)

// TestAgainstSeparateNATSServer runs the gateway against the machine's own
// nats-server process, not the embedded one: provisioning, publish with
// dedup and the stored headers must work there too.
func TestAgainstSeparateNATSServer(t *testing.T) {
	url, _, js := testkit.ExternalNATS(t)
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- gateway.Run(ctx, config.MapEnv(map[string]string{
			"GATEWAY_ADDR": addr, "NATS_URL": url, "STRIPE_WEBHOOK_SECRET": secret,
		}), logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v\n%s", err, logs)
		}
	}()
	h := &hub{url: "http://" + addr, js: js}
	testkit.WaitFor(t, 10*time.Second, "gateway ready on the separate server", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("gateway exited: %v\n%s", err, logs)
		default:
		}
		r, err := httpGet(h.url + "/readyz")
		return err == nil && r == 200
	})
	id := fmt.Sprintf("evt_external%d", time.Now().UnixNano())
	body := event(t, "charge.refunded", id)
	for i := 0; i < 3; i++ {
		if got := h.post(t, body, sign(body, secret)); got.Status != 200 || got.Body["duplicate"] != (i > 0) {
			t.Fatalf("post %d: %d %v", i, got.Status, got.Body)
		}
	}
	s, err := js.Stream(context.Background(), natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), wire.StripeEventSubject("charge.refunded"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(wire.HeaderMsgID) != id || !bytes.Equal(msg.Data, body) {
		t.Fatalf("last charge.refunded on the separate server is %s, want %s", msg.Header.Get(wire.HeaderMsgID), id)
	}
}

// With GATEWAY_ADMIN_ADDR set, the public listener serves only the webhook
// (and /healthz); health, readiness and metrics move to the admin address.
func TestAdminAddressKeepsOperationsOffThePublicListener(t *testing.T) {
	b := testkit.NATS(t)
	admin := freeAddr(t)
	h := startHubOn(t, b, map[string]string{"GATEWAY_ADMIN_ADDR": admin})
	for _, path := range []string{"/metrics", "/api/stripe/webhook-health"} {
		if code, _ := httpGet(h.url + path); code != 404 {
			t.Errorf("public %s = %d, want 404", path, code)
		}
		if code, err := httpGet("http://" + admin + path); err != nil || code != 200 {
			t.Errorf("admin %s = %d %v, want 200", path, code, err)
		}
	}
	body := event(t, "invoice.paid", "evt_adminsplit0001")
	if got := h.post(t, body, sign(body, secret)); got.Status != 200 {
		t.Fatalf("webhook on the public listener: %d %v", got.Status, got.Body)
	}
}
