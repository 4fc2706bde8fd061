package support_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/support"
)

// TestFlakyDeskStillOneTicketEach: Zendesk answers 30% of requests with a
// 5xx or a 429; 1,000 failed-payment events still open exactly 1,000
// tickets, none twice, and nothing is dead-lettered.
func TestFlakyDeskStillOneTicketEach(t *testing.T) {
	const n = 1000
	e := start(t, map[string]string{"CONSUMER_BACKOFF": "10ms,20ms,50ms", "CONSUMER_MAX_ATTEMPTS": "25", "SUPPORT_WORKERS": "8"})
	e.desk.SetRateLimit(-1) // the plan's limit is not what this test is about
	e.desk.SetInjectedRetryAfter(0)
	e.desk.FlakyRate(0.3, 42)
	for i := 0; i < n; i++ {
		m := meta(fmt.Sprintf("billing.payment.failed:in_%04d:1", i))
		m.CanonicalCustomerId = fmt.Sprintf("cust_%03d", i%200)
		e.publish(t, &billingv1.PaymentFailed{Meta: m, InvoiceId: fmt.Sprintf("in_%04d", i), Amount: 1000, Currency: "usd",
			AttemptCount: 1, NextPaymentAttempt: timestamppb.Now()})
	}
	testkit.WaitFor(t, 120*time.Second, "1,000 tickets opened", func() bool {
		return len(e.outcomes(t, subjects.SupportTicketOpened)) == n
	})
	if got := len(e.desk.Tickets()); got != n {
		t.Fatalf("%d tickets in Zendesk, want %d (no duplicates)", got, n)
	}
	for i := 0; i < n; i += 97 {
		ext := support.ExternalID("payment_failed", fmt.Sprintf("billing.payment.failed:in_%04d:1", i))
		if k := len(e.desk.TicketsByExternalID(ext)); k != 1 {
			t.Errorf("%s: %d tickets", ext, k)
		}
	}
	s, _ := e.js.Stream(t.Context(), natsbus.StreamDLQ)
	if info, _ := s.Info(t.Context()); info.State.Msgs != 0 {
		t.Fatalf("%d dead letters, want 0", info.State.Msgs)
	}
	failures := 0
	for _, r := range e.desk.Requests() {
		if r.Status >= 500 || r.Status == http.StatusTooManyRequests {
			failures++
		}
	}
	if failures < n/10 {
		t.Errorf("only %d injected failures: the desk was not flaky", failures)
	}
	t.Logf("%d requests, %d injected failures", len(e.desk.Requests()), failures)
}
