package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/gateway"
)

// TestAgainstSeparateNATSServer runs the gateway against the machine's own
// nats-server process, not the embedded one: its start-up check, publish
// with dedup and the stored headers must work there too.
func TestAgainstSeparateNATSServer(t *testing.T) {
	url, _, js := testkit.ExternalNATS(t)
	// The shared server may be fresh: migrate it as a deploy would.
	if _, err := natsbus.Migrate(context.Background(), js, natsbus.Options{}); err != nil {
		t.Fatal(err)
	}
	addr, admin := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() {
		done <- gateway.Run(ctx, config.MapEnv(map[string]string{
			"GATEWAY_ADDR": addr, "GATEWAY_ADMIN_ADDR": admin, "NATS_URL": url, "STRIPE_WEBHOOK_SECRET": secret,
		}), logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v\n%s", err, logs)
		}
	}()
	h := &hub{url: "http://" + addr, admin: "http://" + admin, js: js}
	testkit.WaitFor(t, 10*time.Second, "gateway ready on the separate server", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("gateway exited: %v\n%s", err, logs)
		default:
		}
		r, err := httpGet(h.admin + "/readyz")
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

// TestPublicListenerServesOnlyTheWebhookAndLiveness: the public listener
// answers POST /webhooks/stripe and GET /healthz, and 404 to everything else;
// readiness, metrics and webhook-health are on the admin listener only.
func TestPublicListenerServesOnlyTheWebhookAndLiveness(t *testing.T) {
	h := startHub(t, nil)
	for _, path := range []string{"/metrics", "/readyz", "/api/stripe/webhook-health", "/", "/debug/pprof/"} {
		if code, _ := httpGet(h.url + path); code != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404", path, code)
		}
	}
	for _, path := range []string{"/metrics", "/readyz", "/api/stripe/webhook-health", "/healthz"} {
		if code, err := httpGet(h.admin + path); err != nil || code != http.StatusOK {
			t.Errorf("admin %s = %d %v, want 200", path, code, err)
		}
	}
	if code, err := httpGet(h.url + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("public /healthz = %d %v, want 200 (container liveness)", code, err)
	}
	if code, _ := httpGet(h.admin + "/webhooks/stripe"); code != http.StatusNotFound {
		t.Errorf("admin /webhooks/stripe = %d, want 404: webhooks come in on the public listener only", code)
	}
	body := event(t, "invoice.paid", "evt_adminsplit0001")
	if got := h.post(t, body, sign(body, secret)); got.Status != 200 {
		t.Fatalf("webhook on the public listener: %d %v", got.Status, got.Body)
	}
}

// TestPprofOnAdminOnlyWhenEnabled: Go's profiles are served only with
// GATEWAY_PPROF=1, and then on the admin listener only; the public listener
// never serves them.
func TestPprofOnAdminOnlyWhenEnabled(t *testing.T) {
	paths := []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/pprof/symbol", "/debug/pprof/profile?seconds=1"}
	tests := []struct {
		name      string
		env       map[string]string
		wantAdmin int
	}{
		{name: "off by default", env: nil, wantAdmin: http.StatusNotFound},
		{name: "off", env: map[string]string{"GATEWAY_PPROF": "0"}, wantAdmin: http.StatusNotFound},
		{name: "on", env: map[string]string{"GATEWAY_PPROF": "1"}, wantAdmin: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHub(t, tt.env)
			for _, path := range paths {
				if code, err := httpGet(h.url + path); err != nil || code != http.StatusNotFound {
					t.Errorf("public %s = %d %v, want 404", path, code, err)
				}
				if code, err := httpGet(h.admin + path); err != nil || code != tt.wantAdmin {
					t.Errorf("admin %s = %d %v, want %d", path, code, err, tt.wantAdmin)
				}
			}
			if tt.wantAdmin != http.StatusOK {
				return
			}
			// A CPU profile is a gzipped protobuf, whatever pprof's text pages say.
			if got := get(t, h.admin+"/debug/pprof/profile?seconds=1"); !strings.HasPrefix(got, "\x1f\x8b") {
				t.Errorf("admin CPU profile starts %q, want gzip", got[:min(len(got), 16)])
			}
		})
	}
}

// TestAdminAddress: outside development GATEWAY_ADMIN_ADDR is required (a
// loopback default would leave probes and the scraper silently unable to
// reach it); in development it defaults to loopback; it never equals the
// public address.
func TestAdminAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "production requires it", env: map[string]string{"SWITCHYARD_ENV": "production"}, wantErr: "GATEWAY_ADMIN_ADDR: required in production"},
		{name: "staging requires it", env: map[string]string{"SWITCHYARD_ENV": "staging"}, wantErr: "GATEWAY_ADMIN_ADDR: required in staging"},
		{name: "development defaults to loopback", env: map[string]string{"SWITCHYARD_ENV": "development"}, want: gateway.DevAdminAddr},
		{name: "unset environment is development", env: map[string]string{}, want: gateway.DevAdminAddr},
		{name: "production with one", env: map[string]string{"SWITCHYARD_ENV": "production", "GATEWAY_ADMIN_ADDR": ":8086"}, want: ":8086"},
		{name: "same as the public address", env: map[string]string{"GATEWAY_ADDR": ":8080", "GATEWAY_ADMIN_ADDR": ":8080"}, wantErr: "GATEWAY_ADMIN_ADDR: must differ from GATEWAY_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"STRIPE_WEBHOOK_SECRET": secret}
			maps.Copy(env, tt.env)
			cfg, err := gateway.LoadConfig(config.MapEnv(env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadConfig = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AdminAddr != tt.want {
				t.Errorf("AdminAddr = %q, want %q", cfg.AdminAddr, tt.want)
			}
		})
	}
	if strings.Contains(gateway.DevAdminAddr, "0.0.0.0") || !strings.HasPrefix(gateway.DevAdminAddr, "127.0.0.1:") {
		t.Errorf("DevAdminAddr = %q, want a loopback address", gateway.DevAdminAddr)
	}
}
