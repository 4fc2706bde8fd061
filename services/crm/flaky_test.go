package crm_test

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// TestFlakyCRMStillOneContactEach: HubSpot answers 30% of requests with a
// 5xx or a 429; 1,000 billing events for 200 customers still leave exactly
// 200 contacts with their last state, and nothing is dead-lettered.
func TestFlakyCRMStillOneContactEach(t *testing.T) {
	const n, customers = 1000, 200
	hub := hubspot.New(hubspot.Options{Tokens: map[string][]string{token: nil}, TenSecondLimit: -1, RetryAfter: true})
	api := httptest.NewServer(hub)
	defer api.Close()
	e := startWith(t, api.URL, hub, map[string]string{"CONSUMER_BACKOFF": "10ms,20ms,50ms", "CONSUMER_MAX_ATTEMPTS": "25", "CRM_WORKERS": "32", "CRM_BATCH_LINGER": "20ms"})
	hub.FlakyRate(0.3, 7) // from here on (start-up retries are the adapter's and Run's business)
	for i := 0; i < n; i++ {
		m := meta(fmt.Sprintf("billing.payment.succeeded:in_%04d", i))
		c := i % customers
		m.CanonicalCustomerId, m.Email, m.StripeCustomerId = fmt.Sprintf("cust_%03d", c), fmt.Sprintf("c%03d@example.com", c), fmt.Sprintf("cus_%03d", c)
		e.publish(t, &billingv1.PaymentSucceeded{Meta: m, InvoiceId: fmt.Sprintf("in_%04d", i), Amount: 1000, Currency: "usd"})
	}
	testkit.WaitFor(t, 120*time.Second, "1,000 syncs", func() bool { return len(e.outcomes(t, subjects.CRMContactSynced)) == n })
	contacts := hub.Contacts()
	if len(contacts) != customers {
		t.Fatalf("%d contacts in HubSpot, want %d (one per customer, no duplicates)", len(contacts), customers)
	}
	for _, c := range contacts {
		if c.Properties["switchyard_last_payment_status"] != "succeeded" || c.Properties["switchyard_canonical_id"] == "" {
			t.Fatalf("contact %s: %v", c.ID, c.Properties)
		}
	}
	s, _ := e.js.Stream(t.Context(), natsbus.StreamDLQ)
	if info, _ := s.Info(t.Context()); info.State.Msgs != 0 {
		t.Fatalf("%d dead letters, want 0", info.State.Msgs)
	}
	if retries := len(e.outcomes(t, subjects.CRMContactPendingRetry)); retries < n/10 {
		t.Errorf("only %d retries reported: HubSpot was not flaky", retries)
	} else {
		t.Logf("%d pending-retry outcomes on the way to %d syncs", retries, n)
	}
}
