package support_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/support"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

type env struct {
	js   jetstream.JetStream
	desk *zendesk.Server
}

func start(t *testing.T, extra map[string]string) *env {
	t.Helper()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	desk, err := zendesk.New(zendesk.Options{Email: "agent@example.com", APIToken: "zd-token",
		Groups: []zendesk.Group{{ID: 11, Name: "Billing"}, {ID: 12, Name: "Customer Success"}}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(desk)
	t.Cleanup(api.Close)
	addr := testkit.FreeAddr(t)
	vars := map[string]string{
		"SUPPORT_ADDR": addr, "NATS_URL": b.URL, "DATABASE_URL": testkit.Postgres(t), "LOG_LEVEL": "warn",
		"ZENDESK_BASE_URL": api.URL, "ZENDESK_EMAIL": "agent@example.com", "ZENDESK_API_TOKEN": "zd-token",
		"SUPPORT_GROUPS": "Billing=11,Customer Success=12",
	}
	for k, v := range extra {
		vars[k] = v
	}
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
	testkit.WaitFor(t, 20*time.Second, "support ready", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
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
	return &env{js: js, desk: desk}
}

func meta(id string) *billingv1.EventMeta {
	return &billingv1.EventMeta{EventId: id, CanonicalCustomerId: "cust_grace", OccurredAt: timestamppb.Now(),
		StripeCustomerId: "cus_Grace", Email: "grace@example.com"}
}

func (e *env) publish(t *testing.T, m subjects.BillingEvent) {
	t.Helper()
	subject, err := subjects.Of(m)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := proto.Marshal(m)
	if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Data: data, Header: nats.Header{wire.HeaderMsgID: {m.GetMeta().GetEventId()}}}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) outcomes(t *testing.T, subject string) []proto.Message {
	t.Helper()
	s, _ := e.js.Stream(context.Background(), natsbus.StreamSupport)
	info, _ := s.Info(context.Background())
	var out []proto.Message
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil || m.Subject != subject {
			continue
		}
		d, _ := subjects.Decode(m.Subject, m.Data)
		out = append(out, d)
	}
	return out
}

func TestEveryDefaultRuleOpensItsTicket(t *testing.T) {
	e := start(t, nil)
	plan := &billingv1.Plan{PriceId: "price_pro", ProductName: "Pro", Mrr: 4900, Currency: "usd"}
	events := []struct {
		ev                    subjects.BillingEvent
		rule, priority, group string
		groupID               int64
	}{
		{&billingv1.PaymentFailed{Meta: meta("f1"), InvoiceId: "in_1", Amount: 4900, Currency: "usd", AttemptCount: 1, NextPaymentAttempt: timestamppb.Now()}, "payment_failed", "high", "Billing", 11},
		{&billingv1.PaymentFailed{Meta: meta("f4"), InvoiceId: "in_1", Amount: 4900, Currency: "usd", AttemptCount: 4, Final: true}, "payment_failed_final", "urgent", "Billing", 11},
		{&billingv1.SubscriptionCanceled{Meta: meta("c1"), Subscription: &billingv1.Subscription{SubscriptionId: "sub_1", Plan: plan}}, "cancellation", "normal", "Customer Success", 12},
		{&billingv1.DisputeOpened{Meta: meta("d1"), Dispute: &billingv1.Dispute{DisputeId: "dp_1", Amount: 4900, Currency: "usd", Reason: "fraudulent"}}, "chargeback", "urgent", "Billing", 11},
		{&billingv1.RefundIssued{Meta: meta("r1"), RefundId: "re_1", Amount: 1500, Currency: "usd", Reason: "requested_by_customer"}, "refund", "low", "Billing", 11},
	}
	for _, ev := range events {
		e.publish(t, ev.ev)
	}
	testkit.WaitFor(t, 20*time.Second, "five tickets", func() bool { return len(e.outcomes(t, subjects.SupportTicketOpened)) == 5 })
	if n := len(e.desk.Tickets()); n != 5 {
		t.Fatalf("%d tickets in Zendesk, want 5", n)
	}
	for _, ev := range events {
		ext := support.ExternalID(ev.rule, ev.ev.GetMeta().GetEventId())
		ts := e.desk.TicketsByExternalID(ext)
		if len(ts) != 1 {
			t.Errorf("rule %s: %d tickets with external_id %s, want 1", ev.rule, len(ts), ext)
			continue
		}
		tk := ts[0]
		if tk.Priority != ev.priority || tk.GroupID != ev.groupID || !contains(tk.Tags, ev.rule) && !contains(tk.Tags, strings.TrimSuffix(ev.rule, "_final")) {
			t.Errorf("rule %s: ticket priority %q group %d tags %v; want %s, %d", ev.rule, tk.Priority, tk.GroupID, tk.Tags, ev.priority, ev.groupID)
		}
		if strings.Contains(tk.Description, "4242") || tk.Description == "" {
			t.Errorf("rule %s: body %q", ev.rule, tk.Description)
		}
	}
	if tk := e.desk.TicketsByExternalID(support.ExternalID("payment_failed", "f1"))[0]; !strings.Contains(tk.Description, "49.00 USD") || !strings.Contains(tk.Description, "attempt 1") {
		t.Errorf("payment_failed body lacks amount or attempt: %q", tk.Description)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// The desk stores the ticket and the answer is lost (connection dropped):
// the retry finds the ticket by external_id instead of opening a second.
func TestLostAnswerStillOneTicket(t *testing.T) {
	e := start(t, nil)
	e.desk.CrashNextCreates(1, zendesk.CrashDropConnection)
	e.publish(t, &billingv1.DisputeOpened{Meta: meta("d9"), Dispute: &billingv1.Dispute{DisputeId: "dp_9", Amount: 100, Currency: "usd"}})
	testkit.WaitFor(t, 20*time.Second, "ticket opened after the retry", func() bool { return len(e.outcomes(t, subjects.SupportTicketOpened)) == 1 })
	if n := len(e.desk.TicketsByExternalID(support.ExternalID("chargeback", "d9"))); n != 1 {
		t.Fatalf("%d tickets, want exactly 1", n)
	}
}

func TestCriticalFailureIsFlagged(t *testing.T) {
	e := start(t, nil)
	e.desk.SetCredentials("agent@example.com", "rotated") // ours no longer works
	e.publish(t, &billingv1.RefundIssued{Meta: meta("r5"), RefundId: "re_5", Amount: 100, Currency: "usd"})
	testkit.WaitFor(t, 20*time.Second, "failed outcome", func() bool { return len(e.outcomes(t, subjects.SupportTicketFailed)) == 1 })
	f := e.outcomes(t, subjects.SupportTicketFailed)[0].(*supportv1.TicketFailed)
	if !f.GetCritical() || f.GetRule() != "refund" || strings.Contains(f.GetReason(), "zd-token") {
		t.Errorf("failure outcome %v: want critical refund, no token", f)
	}
	if len(e.desk.Tickets()) != 0 {
		t.Error("a ticket was created with bad credentials")
	}
}

func TestRulesAreValidated(t *testing.T) {
	if _, err := support.DefaultRules(); err != nil {
		t.Fatalf("shipped rules: %v", err)
	}
	bad := `{"rules":[{"name":"x","on":"billing.nope","kind":"k","priority":"asap","type":"problem","group":"G","tags":[],"subject":"{{.Nope}}","body":"b"}]}`
	_, err := support.ParseRules([]byte(bad))
	for _, want := range []string{"billing.nope", "asap", "Nope"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	withAssignee := `{"rules":[{"name":"vip","on":"billing.dispute.opened","kind":"chargeback","priority":"urgent","type":"incident","group":"Billing","assignee_id":42,"tags":[],"subject":"s","body":"b"}]}`
	if rs, err := support.ParseRules([]byte(withAssignee)); err != nil || rs.Rules[0].Assignee != 42 {
		t.Errorf("assignee_id: %v", err)
	}
	if _, err := support.ParseRules([]byte(`{"rules":[],"extra":1}`)); err == nil {
		t.Error("unknown field accepted")
	}
	_, err = support.LoadConfig(config.MapEnv(map[string]string{
		"DATABASE_URL": "postgres://x", "ZENDESK_BASE_URL": "https://a.zendesk.com", "ZENDESK_EMAIL": "a@b.c", "ZENDESK_API_TOKEN": "t",
		"SUPPORT_GROUPS": "Billing=1",
	}))
	if err == nil || !strings.Contains(err.Error(), "Customer Success") {
		t.Errorf("a rule's unmapped group was accepted: %v", err)
	}
}
