package identity_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
)

// TestAgainstSeparateNATSServer runs identity on the machine's own
// nats-server process (2.9 here): migrating, binding the durable consumer
// and publishing domain events must work there as on the embedded server.
func TestAgainstSeparateNATSServer(t *testing.T) {
	url, _, js := testkit.ExternalNATS(t)
	durable := fmt.Sprintf("identity_test_%d", time.Now().UnixNano())
	// The shared server gets this run's identity consumers as a deployment
	// with IDENTITY_CONSUMER=<durable> would: from switchyard migrate.
	if _, err := natsbus.Migrate(context.Background(), js, natsbus.Options{IdentityConsumer: durable}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = js.DeleteConsumer(context.Background(), natsbus.StreamStripe, durable)
		_ = js.DeleteConsumer(context.Background(), natsbus.StreamCRM, natsbus.IdentityCRMLinks(durable))
	})
	h := startIdentity(t, url, js, map[string]string{"IDENTITY_CONSUMER": durable})

	// A customer of this run only, so the shared server's history cannot match.
	cus := fmt.Sprintf("cus_Ext%d", time.Now().UnixNano())
	evt := fmt.Sprintf("evt_ext%d", time.Now().UnixNano())
	raw := testkit.StripeEvent(t, "customer.created")
	raw = bytes.ReplaceAll(raw, []byte("cus_OnMHOpJU2HN6Xv"), []byte(cus))
	raw = bytes.Replace(raw, []byte("evt_1O59vsGgdF1VjufLNnhVwvTi"), []byte(evt), 1)
	h.deliver(t, raw)

	s, err := js.Stream(context.Background(), natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	// The server is shared with other packages' tests running at the same
	// time: look through the stream for this run's event, not at the last one.
	seen := uint64(0)
	testkit.WaitFor(t, 30*time.Second, "billing.customer.upserted on the separate server", func() bool {
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for seq := max(seen+1, info.State.FirstSeq); seq <= info.State.LastSeq; seq++ {
			seen = seq
			m, err := s.GetMsg(context.Background(), seq)
			if err != nil || m.Subject != subjects.BillingCustomerUpserted {
				continue
			}
			decoded, err := subjects.Decode(m.Subject, m.Data)
			if err != nil {
				t.Fatal(err)
			}
			meta := decoded.(subjects.BillingEvent).GetMeta()
			if meta.GetStripeCustomerId() == cus && len(meta.GetSourceEventIds()) == 1 && meta.GetSourceEventIds()[0] == evt {
				return true
			}
		}
		return false
	})
}
