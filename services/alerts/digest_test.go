package alerts_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/services/alerts"
)

// The daily digest goes to Slack once per day with the projector's
// figures, also when the service restarts.
func TestDailyDigest(t *testing.T) {
	const token = "digest-reader-0123456789abcdef"
	var calls atomic.Int32
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/digest" || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error":{"code":"unauthorized","message":"no"}}`, http.StatusUnauthorized)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"from":"2026-11-26T09:00:00Z","to":"2026-11-27T09:00:00Z","stripe_events":1234,"drift_healed":3,
			"billing_events":1100,"automations_done":950,"automations_failed":2,"failures_open":1,
			"customers_by_state":{"payment received":800,"support ticket opened":12},"problems":[]}`))
	}))
	defer status.Close()
	sl, err := slackemu.New(slackemu.Options{RateLimit: 100, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	hook := httptest.NewServer(sl)
	defer hook.Close()
	b := testkit.NATS(t)
	db := testkit.Postgres(t)

	run := func() func() {
		addr := testkit.FreeAddr(t)
		vars := config.MapEnv(map[string]string{
			"ALERTS_ADDR": addr, "NATS_URL": b.URL, "DATABASE_URL": db, "LOG_LEVEL": "warn", "SLACK_WEBHOOK_URL": hook.URL + sl.Path(),
			"ALERTS_DIGEST_AT": "00:00", "SWITCHYARD_OPS_URL": status.URL, "SWITCHYARD_OPS_TOKEN": token,
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var logs bytes.Buffer
		go func() { done <- alerts.Run(ctx, vars, &logs) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("alerts.Run: %v\n%s", err, logs.String())
			}
		}
	}
	stop := run()
	testkit.WaitFor(t, 20*time.Second, "the digest in Slack", func() bool { return len(sl.Messages()) == 1 })
	text := sl.Messages()[0].Text
	for _, want := range []string{"Switchyard daily digest", "Stripe events processed: 1,234", "drift healed: 3 missed deliveries",
		"Automations done: 950", "given up: 2", "Failures open: 1", "`payment received` 800, `support ticket opened` 12"} {
		if !strings.Contains(text, want) {
			t.Errorf("digest lacks %q:\n%s", want, text)
		}
	}
	stop()
	// A restart the same day sends nothing more.
	stop = run()
	defer stop()
	testkit.Never(t, 1500*time.Millisecond, "a second digest the same day", func() bool { return len(sl.Messages()) > 1 })
	if calls.Load() != 1 {
		t.Errorf("status API called %d times, want 1", calls.Load())
	}
}

func TestDigestConfig(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://x@h/db", "SLACK_WEBHOOK_URL": "https://hooks.slack.example/x"}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad time", map[string]string{"ALERTS_DIGEST_AT": "9am"}, "ALERTS_DIGEST_AT"},
		{"url without token", map[string]string{"SWITCHYARD_OPS_URL": "http://projector:8090"}, "SWITCHYARD_OPS_TOKEN"},
		{"console not a web address", map[string]string{"SWITCHYARD_CONSOLE_URL": "javascript:alert(1)"}, "SWITCHYARD_CONSOLE_URL"},
	} {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range c.env {
			env[k] = v
		}
		if _, err := alerts.LoadConfig(config.MapEnv(env)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
	if _, err := alerts.LoadConfig(config.MapEnv(map[string]string{"DATABASE_URL": "postgres://x@h/db", "SLACK_WEBHOOK_URL": "https://h/x", "ALERTS_DIGEST_AT": "off", "SWITCHYARD_OPS_URL": "http://p"})); err != nil {
		t.Errorf("digest off: %v", err)
	}
}
