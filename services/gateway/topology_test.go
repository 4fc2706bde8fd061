package gateway_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/gateway"
)

// TestRefusesToStartOnAnUnmigratedServer: the gateway creates no stream.
// On a server nobody migrated it exits at once with what is missing and
// what to do, instead of making the streams with its own settings.
func TestRefusesToStartOnAnUnmigratedServer(t *testing.T) {
	b := testkit.EmptyNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := gateway.Run(ctx, config.MapEnv(map[string]string{
		"GATEWAY_ADDR": freeAddr(t), "GATEWAY_ADMIN_ADDR": freeAddr(t), "NATS_URL": b.URL, "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "error",
	}), &syncBuffer{})
	if !errors.Is(err, natsbus.ErrNotMigrated) || !strings.Contains(err.Error(), "stream STRIPE does not exist") ||
		!strings.HasSuffix(err.Error(), "run `switchyard migrate`") {
		t.Fatalf("gateway.Run on an empty server: %v, want a refusal that names STRIPE and says to run switchyard migrate", err)
	}
	_, js := b.Connect(t)
	for name := range js.StreamNames(ctx).Name() {
		t.Errorf("stream %s exists after the gateway refused to start", name)
	}
}

// TestLeavesStreamSettingsAlone: a gateway told NATS_STREAM_MAX_AGE=1h on a
// hub migrated to keep everything serves, keeps STRIPE's history as it is
// (it used to re-apply its own retention at every start) and logs the
// difference.
func TestLeavesStreamSettingsAlone(t *testing.T) {
	h := startHub(t, map[string]string{"NATS_STREAM_MAX_AGE": "1h"})
	ctx := context.Background()
	for _, name := range natsbus.StreamNames() {
		s, err := h.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if age := s.CachedInfo().Config.MaxAge; age != 0 {
			t.Errorf("stream %s keeps messages for %v after the gateway started, want 0 (forever) as migrated", name, age)
		}
	}
	if !strings.Contains(h.logs.String(), "stream STRIPE has max age 0s where NATS_STREAM_MAX_AGE asks for 1h0m0s") {
		t.Errorf("the difference is not logged:\n%s", h.logs.String())
	}
}
