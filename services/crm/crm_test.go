package crm_test

import (
	"bytes"
	"context"
	"fmt"
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
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/crm"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

const token = "pat-na1-switchyard-test"

type env struct {
	js  jetstream.JetStream
	hub *hubspot.Server
}

func start(t *testing.T) *env {
	t.Helper()
	hub := hubspot.New(hubspot.Options{Tokens: map[string][]string{token: nil}})
	api := httptest.NewServer(hub)
	t.Cleanup(api.Close)
	return startWith(t, api.URL, hub, nil)
}

// startWith runs crm.Run against the HubSpot at hubURL, with extra env.
func startWith(t *testing.T, hubURL string, hub *hubspot.Server, extra map[string]string) *env {
	t.Helper()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	addr := testkit.FreeAddr(t)
	m := map[string]string{
		"CRM_ADDR": addr, "NATS_URL": b.URL, "DATABASE_URL": testkit.Postgres(t),
		"HUBSPOT_TOKEN": token, "HUBSPOT_BASE_URL": hubURL, "LOG_LEVEL": "warn",
	}
	for k, v := range extra {
		m[k] = v
	}
	vars := config.MapEnv(m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() { done <- crm.Run(ctx, vars, &logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("crm.Run: %v", err)
		}
	})
	testkit.WaitFor(t, 20*time.Second, "crm ready", func() bool {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("crm exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return &env{js: js, hub: hub}
}

func meta(id string) *billingv1.EventMeta {
	return &billingv1.EventMeta{
		EventId: id, CanonicalCustomerId: "cust_ada", SourceEventIds: []string{"evt_" + id}, OccurredAt: timestamppb.Now(),
		StripeCustomerId: "cus_Ada", Email: "ada@example.com",
	}
}

func (e *env) publish(t *testing.T, m subjects.BillingEvent) {
	t.Helper()
	subject, err := subjects.Of(m)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := proto.Marshal(m)
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{wire.HeaderMsgID: {m.GetMeta().GetEventId()}}}
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// outcomes returns the crm.> messages of one subject.
func (e *env) outcomes(t *testing.T, subject string) []proto.Message {
	t.Helper()
	s, err := e.js.Stream(context.Background(), natsbus.StreamCRM)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(context.Background())
	var out []proto.Message
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil || m.Subject != subject {
			continue
		}
		d, err := subjects.Decode(m.Subject, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestContactFollowsTheCustomer(t *testing.T) {
	e := start(t)
	e.publish(t, &billingv1.CustomerUpserted{Meta: meta("b1"), Email: "ada@example.com", Name: "Ada Lovelace", StripeCustomerIds: []string{"cus_Ada"}})
	plan := &billingv1.Plan{PriceId: "price_pro", ProductName: "Pro", Mrr: 4900, Currency: "usd"}
	e.publish(t, &billingv1.SubscriptionStarted{Meta: meta("b2"), Subscription: &billingv1.Subscription{
		SubscriptionId: "sub_1", Status: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE, Plan: plan}})
	e.publish(t, &billingv1.PaymentFailed{Meta: meta("b3"), InvoiceId: "in_1", AttemptCount: 1, NextPaymentAttempt: timestamppb.Now()})
	testkit.WaitFor(t, 20*time.Second, "three syncs", func() bool { return len(e.outcomes(t, subjects.CRMContactSynced)) == 3 })

	c, ok := e.hub.ContactByEmail("ada@example.com")
	if !ok {
		t.Fatal("no contact for ada@example.com in HubSpot")
	}
	want := map[string]string{
		"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace",
		"switchyard_canonical_id": "cust_ada", "stripe_customer_id": "cus_Ada",
		"switchyard_plan": "Pro", "switchyard_subscription_status": "active", "switchyard_mrr": "49.00",
		"switchyard_last_payment_status": "failed", "lifecyclestage": "customer",
	}
	for k, v := range want {
		if c.Properties[k] != v {
			t.Errorf("contact %s = %q, want %q", k, c.Properties[k], v)
		}
	}
	if n := len(e.hub.Contacts()); n != 1 {
		t.Errorf("%d contacts in HubSpot, want 1", n)
	}
	for _, m := range e.outcomes(t, subjects.CRMContactSynced) {
		s := m.(*crmv1.ContactSynced)
		if s.GetContactId() != c.ID || s.GetCanonicalCustomerId() != "cust_ada" || s.GetProvider() != "hubspot" {
			t.Errorf("synced outcome %v, want contact %s", s, c.ID)
		}
	}

	// A late (superseded) downgrade does not move plan or MRR back.
	late := meta("b4")
	late.Superseded = true
	e.publish(t, &billingv1.SubscriptionDowngraded{Meta: late, Subscription: &billingv1.Subscription{
		SubscriptionId: "sub_1", Status: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE,
		Plan: &billingv1.Plan{PriceId: "price_basic", ProductName: "Basic", Mrr: 900}}})
	testkit.WaitFor(t, 20*time.Second, "fourth sync", func() bool { return len(e.outcomes(t, subjects.CRMContactSynced)) == 4 })
	if c, _ := e.hub.ContactByEmail("ada@example.com"); c.Properties["switchyard_plan"] != "Pro" || c.Properties["switchyard_mrr"] != "49.00" {
		t.Errorf("a superseded event changed the plan to %q / %q", c.Properties["switchyard_plan"], c.Properties["switchyard_mrr"])
	}
}

func TestVendorOutageIsRetriedAndReported(t *testing.T) {
	e := start(t)
	e.hub.FailNext(1, http.StatusServiceUnavailable)
	e.publish(t, &billingv1.PaymentSucceeded{Meta: meta("p1"), InvoiceId: "in_9", Amount: 4900, Currency: "usd"})
	testkit.WaitFor(t, 20*time.Second, "synced after the retry", func() bool { return len(e.outcomes(t, subjects.CRMContactSynced)) == 1 })
	pending := e.outcomes(t, subjects.CRMContactPendingRetry)
	if len(pending) != 1 {
		t.Fatalf("%d pending-retry outcomes, want 1", len(pending))
	}
	p := pending[0].(*crmv1.ContactPendingRetry)
	if p.GetAttempt() != 1 || p.GetNextAttemptAt() == nil || errclass.FromProto(p.GetErrorClass()) != errclass.ClassTransient {
		t.Errorf("pending retry %v", p)
	}
	if s := e.outcomes(t, subjects.CRMContactSynced)[0].(*crmv1.ContactSynced); s.GetAttempt() != 2 {
		t.Errorf("synced on attempt %d, want 2", s.GetAttempt())
	}
}

func TestRevokedTokenIsDeadLetteredAsAuth(t *testing.T) {
	e := start(t)
	e.hub.SetTokens(map[string][]string{"pat-na1-rotated": nil}) // ours no longer works
	e.publish(t, &billingv1.PaymentSucceeded{Meta: meta("a1"), InvoiceId: "in_7"})
	testkit.WaitFor(t, 20*time.Second, "failed outcome", func() bool { return len(e.outcomes(t, subjects.CRMContactFailed)) == 1 })
	f := e.outcomes(t, subjects.CRMContactFailed)[0].(*crmv1.ContactFailed)
	if errclass.FromProto(f.GetErrorClass()) != errclass.ClassAuth || f.GetAttempt() != 1 || strings.Contains(f.GetReason(), token) {
		t.Errorf("failed outcome %v: want auth on the first attempt, no token in the reason", f)
	}
	s, _ := e.js.Stream(context.Background(), natsbus.StreamDLQ)
	m, err := s.GetLastMsgForSubject(context.Background(), "dlq.crm")
	if err != nil {
		t.Fatal(err)
	}
	dl, err := consumer.DecodeDeadLetter(m.Data)
	if err != nil || dl.Class != errclass.ClassAuth || dl.OriginalMsgID != "a1" {
		t.Fatalf("dead letter %+v %v", dl, err)
	}
	if len(e.hub.Contacts()) != 0 {
		t.Error("a contact was written with a revoked token")
	}
}

// TestBurstGoesOutInBatches: 150 customers' events at once reach HubSpot in
// a few batch calls of up to 100 contacts, not 150 calls.
func TestBurstGoesOutInBatches(t *testing.T) {
	hub := hubspot.New(hubspot.Options{Tokens: map[string][]string{token: nil}, TenSecondLimit: -1})
	api := httptest.NewServer(hub)
	defer api.Close()
	e := startWith(t, api.URL, hub, map[string]string{"CRM_WORKERS": "150", "CRM_BATCH_LINGER": "300ms"})
	for i := 0; i < 150; i++ {
		m := meta(fmt.Sprintf("billing.payment.succeeded:in_b%03d", i))
		m.Email, m.CanonicalCustomerId = fmt.Sprintf("burst%03d@example.com", i), fmt.Sprintf("cust_b%03d", i)
		e.publish(t, &billingv1.PaymentSucceeded{Meta: m, InvoiceId: fmt.Sprintf("in_b%03d", i)})
	}
	testkit.WaitFor(t, 20*time.Second, "150 syncs", func() bool { return len(e.outcomes(t, subjects.CRMContactSynced)) == 150 })
	if n := len(hub.Contacts()); n != 150 {
		t.Fatalf("%d contacts, want 150", n)
	}
	calls := hub.Requests()[hubspot.EndpointBatchUpsert]
	if calls > 10 {
		t.Errorf("%d batch calls for 150 contacts; the upserts were not batched", calls)
	}
	t.Logf("150 contacts in %d batch calls", calls)
}
