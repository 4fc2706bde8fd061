package support_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/support"
)

// Issue 14: two deliveries of one message in flight at once must not open
// two tickets. Two replicas share NATS and the database; the durable's
// AckWait is 1 s while every Zendesk answer takes 600 ms (a replay's ticket
// is a lookup by external_id and a create, outliving AckWait; a first
// delivery's create alone takes most of it); every one
// of 500 failed payments reaches the handlers twice, as the original and,
// right behind it, a replay of it (its own Nats-Msg-Id, handled under the
// original's id) — the two deliveries race each other across the replicas.
// Zendesk must end with exactly 500 tickets. (Zendesk's 3 s of the issue
// at 500 messages would need ~100 workers, a database connection each, to
// finish within a minute; 600 ms keeps the handlers past AckWait at 16
// workers a replica.)
func TestEachTicketOnceUnderConcurrentDeliveries(t *testing.T) {
	const n = 500
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	ctx := context.Background()
	for _, d := range natsbus.Durables(natsbus.Options{}) {
		if d.Name == support.ConsumerName {
			d.AckWait = time.Second // as `switchyard migrate` would apply it
			if _, err := js.UpdateConsumer(ctx, d.Stream, d.Config()); err != nil {
				t.Fatal(err)
			}
		}
	}
	desk, err := zendesk.New(zendesk.Options{Email: "agent@example.com", APIToken: "zd-token", RateLimit: -1,
		Groups: []zendesk.Group{{ID: 11, Name: "Billing"}, {ID: 12, Name: "Customer Success"}}})
	if err != nil {
		t.Fatal(err)
	}
	desk.SetLatency(600 * time.Millisecond)
	api := httptest.NewServer(desk)
	t.Cleanup(api.Close)
	db := testkit.Postgres(t)
	for range 2 {
		startReplica(t, map[string]string{
			"SUPPORT_ADDR": testkit.FreeAddr(t), "NATS_URL": b.URL, "DATABASE_URL": db, "LOG_LEVEL": "error",
			"ZENDESK_BASE_URL": api.URL, "ZENDESK_EMAIL": "agent@example.com", "ZENDESK_API_TOKEN": "zd-token",
			"SUPPORT_GROUPS": "Billing=11,Customer Success=12", "SUPPORT_WORKERS": "16",
		})
	}

	for i := range n {
		id := "pf_" + strconv.Itoa(i)
		ev := &billingv1.PaymentFailed{Meta: meta(id), InvoiceId: "in_" + strconv.Itoa(i), Amount: 4900, Currency: "usd", AttemptCount: 1}
		ev.Meta.CanonicalCustomerId = "cust_" + strconv.Itoa(i)
		ev.Meta.OccurredAt = timestamppb.Now()
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []nats.Header{
			{wire.HeaderMsgID: {id}},
			{wire.HeaderMsgID: {id + ":replay"}, consumer.HeaderReplayOf: {id}},
		} {
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects.BillingPaymentFailed, Data: data, Header: h}); err != nil {
				t.Fatal(err)
			}
		}
	}

	cons, err := js.Consumer(ctx, natsbus.StreamBilling, support.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	// Not WaitFor: on a failure the ticket count below says more than a
	// timeout does (a second ticket makes the external_id lookup of later
	// deliveries ambiguous, so they never settle).
	for deadline := time.Now().Add(75 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= 2*n {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("both deliveries of every payment not handled within 75s: %+v, %v", info, err)
			break
		}
	}
	if got := len(desk.Tickets()); got != n {
		t.Errorf("%d tickets in Zendesk, want %d", got, n)
	}
	twice := 0
	for i := range n {
		if len(desk.TicketsByExternalID(support.ExternalID("payment_failed", "pf_"+strconv.Itoa(i)))) != 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Errorf("%d of %d payments do not have exactly one ticket", twice, n)
	}
	if got := len((&env{js: js}).outcomes(t, subjects.SupportTicketOpened)); got != n {
		t.Errorf("%d support.ticket.opened outcomes, want %d", got, n)
	}
}

// startReplica runs one support.Run with vars until the test ends.
func startReplica(t *testing.T, vars map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- support.Run(ctx, config.MapEnv(vars), &logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("support.Run: %v", err)
		}
	})
	addr := vars["SUPPORT_ADDR"]
	testkit.WaitFor(t, 20*time.Second, "support ready", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("support exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
