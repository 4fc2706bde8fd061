package identity_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/identity"
)

// TestRefusesToStartWithoutItsConsumers: identity binds to the durables
// switchyard migrate made and creates none. With one missing — or under an
// IDENTITY_CONSUMER nobody migrated — it exits at once, naming what is
// missing and saying to run switchyard migrate.
func TestRefusesToStartWithoutItsConsumers(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	links := natsbus.IdentityCRMLinks(identity.DefaultConsumerName)
	if err := js.DeleteConsumer(ctx, natsbus.StreamCRM, links); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		consumer string // IDENTITY_CONSUMER
		want     string
	}{
		{name: "links consumer deleted", want: "nats: consumer identity_crm_links on CRM does not exist: run `switchyard migrate`"},
		{name: "another deployment's name", consumer: "identity_eu",
			want: "nats: consumer identity_eu on STRIPE does not exist; consumer identity_eu_crm_links on CRM does not exist: run `switchyard migrate`"},
	}
	dbURL := testkit.Postgres(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"IDENTITY_ADDR": "127.0.0.1:0", "NATS_URL": b.URL, "DATABASE_URL": dbURL, "LOG_LEVEL": "error"}
			if tt.consumer != "" {
				env["IDENTITY_CONSUMER"] = tt.consumer
			}
			var logs bytes.Buffer
			err := identity.Run(ctx, config.MapEnv(env), &logs)
			if !errors.Is(err, natsbus.ErrNotMigrated) || err.Error() != tt.want {
				t.Fatalf("identity.Run = %v, want %q\n%s", err, tt.want, logs.String())
			}
		})
	}
	for _, c := range []struct{ stream, name string }{{natsbus.StreamCRM, links}, {natsbus.StreamStripe, "identity_eu"}} {
		if _, err := js.Consumer(ctx, c.stream, c.name); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("consumer %s on %s after identity refused to start: %v, want not found", c.name, c.stream, err)
		}
	}
}
