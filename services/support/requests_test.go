package support_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/support"
)

// failedPayment is a non-final failed payment: it triggers one rule,
// payment_failed.
func failedPayment(id string) *billingv1.PaymentFailed {
	m := meta(id)
	m.CanonicalCustomerId = "cust_" + id
	return &billingv1.PaymentFailed{Meta: m, InvoiceId: "in_" + id, Amount: 1000, Currency: "usd",
		AttemptCount: 1, NextPaymentAttempt: timestamppb.Now()}
}

// summary lists requests as "METHOD status" for failure messages.
func summary(reqs []zendesk.Request) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = fmt.Sprintf("%s %d", r.Method, r.Status)
	}
	return out
}

// TestFirstDeliveriesSpendOneRequestPerTicket: N failed payments, each
// delivered once, open N tickets with N requests — the creates, the
// requester inline, and no lookups — under the smallest plan's limit.
func TestFirstDeliveriesSpendOneRequestPerTicket(t *testing.T) {
	const n = 40
	e := start(t, nil)
	before := len(e.desk.Requests())
	for i := range n {
		e.publish(t, failedPayment(fmt.Sprintf("billing.payment.failed:in_%03d:1", i)))
	}
	testkit.WaitFor(t, 30*time.Second, "the tickets' outcomes", func() bool {
		return len(e.outcomes(t, subjects.SupportTicketOpened)) == n
	})
	if got := len(e.desk.Tickets()); got != n {
		t.Errorf("%d tickets, want %d", got, n)
	}
	reqs := e.desk.Requests()[before:]
	creates := 0
	for _, r := range reqs {
		if r.Method == http.MethodPost && r.Status == http.StatusCreated {
			creates++
		}
	}
	if len(reqs) != n || creates != n {
		t.Errorf("%d requests (%d creates) for %d tickets, want %d creates and nothing else", len(reqs), creates, n, n)
	}
}

// TestRedeliveryAfterLostCreateFindsTicket: Zendesk stores the ticket but
// its answer is lost; the redelivery (delivery 2) looks the external_id up,
// finds the ticket and creates nothing.
func TestRedeliveryAfterLostCreateFindsTicket(t *testing.T) {
	for _, tt := range []struct {
		name  string
		crash zendesk.Crash
		lost  int // the status logged for the lost answer
	}{
		{"500 after storing", zendesk.CrashStatus500, http.StatusInternalServerError},
		{"connection dropped after storing", zendesk.CrashDropConnection, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, map[string]string{"CONSUMER_BACKOFF": "10ms"})
			e.desk.CrashNextCreates(1, tt.crash)
			before := len(e.desk.Requests())
			id := "billing.payment.failed:in_lost:1"
			e.publish(t, failedPayment(id))
			testkit.WaitFor(t, 30*time.Second, "the ticket's outcome", func() bool {
				return len(e.outcomes(t, subjects.SupportTicketOpened)) == 1
			})
			if got := len(e.desk.TicketsByExternalID(support.ExternalID("payment_failed", id))); got != 1 {
				t.Errorf("%d tickets, want 1", got)
			}
			reqs := e.desk.Requests()[before:]
			if len(reqs) != 2 || reqs[0].Method != http.MethodPost || reqs[0].Status != tt.lost ||
				reqs[1].Method != http.MethodGet || reqs[1].Status != http.StatusOK {
				t.Errorf("requests %v, want the create whose answer was lost, then one lookup", summary(reqs))
			}
		})
	}
}

// TestFirstDeliveryBehindALostCreateLooksUp: a replay of a message holds
// the ticket's claim and its create's answer is lost; the message's own
// first delivery, waiting for the claim meanwhile, has a delivery count of
// 1 but must look up (the attempted mark says a create may have been sent),
// not create a second ticket.
func TestFirstDeliveryBehindALostCreateLooksUp(t *testing.T) {
	e := start(t, map[string]string{"CONSUMER_BACKOFF": "10ms", "SUPPORT_WORKERS": "4"})
	e.desk.SetLatency(400 * time.Millisecond)
	e.desk.CrashNextCreates(1, zendesk.CrashStatus500)
	id := "billing.payment.failed:in_race:1"
	data, err := proto.Marshal(failedPayment(id))
	if err != nil {
		t.Fatal(err)
	}
	pub := func(h nats.Header) {
		t.Helper()
		if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: subjects.BillingPaymentFailed, Data: data, Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	before := len(e.desk.Requests())
	pub(nats.Header{wire.HeaderMsgID: {id + ":replay"}, consumer.HeaderReplayOf: {id}})
	// The replay is in Zendesk (its lookup is under way): it holds the claim.
	testkit.WaitFor(t, 10*time.Second, "the replay's first request", func() bool {
		return len(e.desk.Requests()) > before
	})
	pub(nats.Header{wire.HeaderMsgID: {id}})
	testkit.WaitFor(t, 30*time.Second, "the ticket's outcome", func() bool {
		return len(e.outcomes(t, subjects.SupportTicketOpened)) == 1
	})
	testkit.WaitFor(t, 30*time.Second, "both deliveries settled", func() bool {
		ok, err := testkit.Settled(context.Background(), e.js, natsbus.StreamBilling, support.ConsumerName)
		return err == nil && ok // an API timeout on a loaded machine: ask again
	})
	if got := len(e.desk.TicketsByExternalID(support.ExternalID("payment_failed", id))); got != 1 {
		t.Errorf("%d tickets, want 1 (requests %v)", got, summary(e.desk.Requests()[before:]))
	}
}
