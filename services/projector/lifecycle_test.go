package projector_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	commonv1 "github.com/switchyard/switchyard/proto/gen/switchyard/common/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
)

// The backbone's lifecycle as the services publish it — signup,
// subscription, first payment, a failed renewal with a ticket and a CRM
// retry, then the retry paying — gives exactly this view and timeline at
// each step.
func TestLifecycleViewAndTimeline(t *testing.T) {
	h := start(t, nil)
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	meta := func(subject, evt string, at time.Duration) *billingv1.EventMeta {
		return &billingv1.EventMeta{EventId: subject + ":" + evt, CanonicalCustomerId: "cust_ada", SourceEventIds: []string{evt},
			OccurredAt: ts(at), StripeCustomerId: "cus_Ada", Email: "ada@example.com"}
	}
	const day = 24 * time.Hour
	plan := &billingv1.Plan{PriceId: "price_pro", ProductId: "prod_pro", ProductName: "Pro", Quantity: 1, AmountPerInterval: 4900,
		Currency: "usd", Interval: billingv1.Interval_INTERVAL_MONTH, IntervalCount: 1, Mrr: 4900}
	sub := &billingv1.Subscription{SubscriptionId: "sub_Ada", Status: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE, Plan: plan,
		CurrentPeriodStart: ts(time.Second), CurrentPeriodEnd: ts(30 * day)}
	synced := func(source string, at time.Duration, attempt uint32) *crmv1.ContactSynced {
		return &crmv1.ContactSynced{EventId: subjects.CRMContactSynced + ":" + source, CanonicalCustomerId: "cust_ada", SourceEventId: source,
			OccurredAt: ts(at), ContactId: "501", Attempt: attempt, Provider: "hubspot"}
	}
	trace := func(n int) string {
		return "4bf92f3577b34da6a3ce929d0e0e47" + string(rune('0'+n/10)) + string(rune('0'+n%10))
	}

	upserted := &billingv1.CustomerUpserted{Meta: meta(subjects.BillingCustomerUpserted, "evt_1", 0), Email: "ada@example.com", Name: "Ada Lovelace", StripeCustomerIds: []string{"cus_Ada"}}
	started := &billingv1.SubscriptionStarted{Meta: meta(subjects.BillingSubscriptionStarted, "evt_2", time.Second), Subscription: sub}
	paidMeta := meta(subjects.BillingPaymentSucceeded, "evt_3", 2*time.Second)
	paidMeta.EventId = subjects.BillingPaymentSucceeded + ":in_1"
	paid := &billingv1.PaymentSucceeded{Meta: paidMeta, InvoiceId: "in_1", SubscriptionId: "sub_Ada", Amount: 4900, Currency: "usd", AttemptCount: 1, BillingReason: "subscription_create"}
	failedMeta := meta(subjects.BillingPaymentFailed, "evt_4", 30*day)
	failedMeta.EventId = subjects.BillingPaymentFailed + ":in_2:1"
	failed := &billingv1.PaymentFailed{Meta: failedMeta, InvoiceId: "in_2", SubscriptionId: "sub_Ada", Amount: 4900, Currency: "usd", AttemptCount: 1,
		NextPaymentAttempt: ts(33 * day), FailureCode: "card_declined", DeclineCode: "insufficient_funds", BillingReason: "subscription_cycle"}
	pending := &crmv1.ContactPendingRetry{EventId: subjects.CRMContactPendingRetry + ":" + failedMeta.EventId + ":1", CanonicalCustomerId: "cust_ada",
		SourceEventId: failedMeta.EventId, OccurredAt: ts(30*day + time.Second), ContactId: "501", Attempt: 1, Provider: "hubspot",
		NextAttemptAt: ts(30*day + 6*time.Second), ErrorClass: commonv1.ErrorClass_ERROR_CLASS_TRANSIENT, Reason: "hubspot: 429 Too Many Requests"}
	ticket := &supportv1.TicketOpened{EventId: subjects.SupportTicketOpened + ":" + failedMeta.EventId + ":payment_failed", CanonicalCustomerId: "cust_ada",
		SourceEventId: failedMeta.EventId, OccurredAt: ts(30*day + 2*time.Second), Rule: "payment_failed", TicketId: "42",
		Priority: supportv1.Priority_PRIORITY_HIGH, Provider: "zendesk", ExternalId: "switchyard:in_2:payment_failed", Group: "Billing"}

	h.publish(t,
		msg(t, upserted, upserted.Meta.EventId, trace(1)),
		msg(t, synced(upserted.Meta.EventId, 500*time.Millisecond, 1), subjects.CRMContactSynced+":"+upserted.Meta.EventId, trace(1)),
		msg(t, started, started.Meta.EventId, trace(2)),
		msg(t, synced(started.Meta.EventId, 1500*time.Millisecond, 1), subjects.CRMContactSynced+":"+started.Meta.EventId, trace(2)),
		msg(t, paid, paidMeta.EventId, trace(3)),
		msg(t, synced(paidMeta.EventId, 2500*time.Millisecond, 1), subjects.CRMContactSynced+":"+paidMeta.EventId, trace(3)),
		msg(t, failed, failedMeta.EventId, trace(4)),
		msg(t, pending, pending.EventId, trace(4)),
		msg(t, ticket, ticket.EventId, trace(4)),
	)
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))

	_, body := h.get(t, "/v1/customers/cust_ada", readToken)
	jsonEqual(t, "view after the failed renewal", body, `{
		"id": "cust_ada", "email": "ada@example.com", "name": "Ada Lovelace",
		"unverified_emails": [], "stripe_customer_ids": ["cus_Ada"], "crm_contact_id": "501", "merged_ids": [], "livemode": false,
		"state": "payment failed — retry was due 2026-12-05",
		"states": ["payment failed — retry was due 2026-12-05", "support ticket opened", "CRM update pending"],
		"plan": "Pro", "subscription_status": "active", "mrr": 4900, "currency": "usd",
		"subscriptions": [{"id": "sub_Ada", "status": "active", "plan": "Pro", "price_id": "price_pro", "quantity": 1, "mrr": 4900,
			"currency": "usd", "interval": "month", "current_period_end": "2026-12-02T10:00:00Z", "cancel_at_period_end": false,
			"updated_at": "2026-11-02T10:00:01Z"}],
		"last_payment": {"status": "failed", "amount": 4900, "currency": "usd", "invoice_id": "in_2", "attempt": 1,
			"at": "2026-12-02T10:00:00Z", "next_attempt_at": "2026-12-05T10:00:00Z", "failure_code": "insufficient_funds",
			"event_id": "billing.payment.failed:in_2:1"},
		"crm": {"status": "pending_retry", "source_event_id": "billing.payment.failed:in_2:1", "source_subject": "billing.payment.failed", "next_attempt_at": "2026-12-02T10:00:06Z",
			"error_class": "transient", "reason": "hubspot: 429 Too Many Requests", "last_synced_at": "2026-11-02T10:00:02.5Z", "failed_event_ids": []},
		"open_tickets": [{"ticket_id": "42", "rule": "payment_failed", "priority": "high", "status": "open", "at": "2026-12-02T10:00:02Z",
			"source_event_id": "billing.payment.failed:in_2:1"}],
		"failed_tickets": [], "open_disputes": [],
		"last_event_at": "2026-12-02T10:00:02Z", "events": 9
	}`)

	_, body = h.get(t, "/v1/customers/cust_ada/timeline", readToken)
	validateResponse(t, http.MethodGet, "/v1/customers/{id}/timeline", http.StatusOK, body)
	type line struct{ At, Subject, Summary, Status, Trace string }
	var page struct {
		Entries []struct {
			At             string   `json:"at"`
			Subject        string   `json:"subject"`
			Summary        string   `json:"summary"`
			Status         string   `json:"status"`
			TraceID        string   `json:"trace_id"`
			SourceEventIDs []string `json:"source_event_ids"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	want := []line{
		{"2026-11-02T10:00:00Z", "billing.customer.upserted", "Customer details updated", "info", trace(1)},
		{"2026-11-02T10:00:00.5Z", "crm.contact.synced", "CRM contact updated (hubspot 501)", "ok", trace(1)},
		{"2026-11-02T10:00:01Z", "billing.subscription.started", "Subscription started: Pro (active), MRR 49.00 USD", "ok", trace(2)},
		{"2026-11-02T10:00:01.5Z", "crm.contact.synced", "CRM contact updated (hubspot 501)", "ok", trace(2)},
		{"2026-11-02T10:00:02Z", "billing.payment.succeeded", "Payment received: 49.00 USD", "ok", trace(3)},
		{"2026-11-02T10:00:02.5Z", "crm.contact.synced", "CRM contact updated (hubspot 501)", "ok", trace(3)},
		{"2026-12-02T10:00:00Z", "billing.payment.failed", "Payment failed: 49.00 USD, attempt 1 (insufficient_funds); retry on 2026-12-05", "failed", trace(4)},
		{"2026-12-02T10:00:01Z", "crm.contact.pending_retry", "CRM update pending: attempt 1 failed (transient), next attempt 2026-12-02T10:00:06Z", "pending", trace(4)},
		{"2026-12-02T10:00:02Z", "support.ticket.opened", "Support ticket opened: #42 (payment_failed, high)", "ok", trace(4)},
	}
	if len(page.Entries) != len(want) {
		t.Fatalf("timeline has %d entries, want %d: %s", len(page.Entries), len(want), body)
	}
	for i, e := range page.Entries {
		if got := (line{e.At, e.Subject, e.Summary, e.Status, e.TraceID}); got != want[i] {
			t.Errorf("timeline[%d] = %+v\nwant          %+v", i, got, want[i])
		}
	}
	if got := page.Entries[6].SourceEventIDs; len(got) != 1 || got[0] != "evt_4" {
		t.Errorf("payment failed entry's source ids = %v, want [evt_4]", got)
	}
	if got := page.Entries[8].SourceEventIDs; len(got) != 1 || got[0] != failedMeta.EventId {
		t.Errorf("ticket entry's source ids = %v, want the billing event", got)
	}

	// The retry pays, and the CRM catches up.
	retryMeta := meta(subjects.BillingPaymentSucceeded, "evt_5", 33*day)
	retryMeta.EventId = subjects.BillingPaymentSucceeded + ":in_2"
	retry := &billingv1.PaymentSucceeded{Meta: retryMeta, InvoiceId: "in_2", SubscriptionId: "sub_Ada", Amount: 4900, Currency: "usd", AttemptCount: 2, BillingReason: "subscription_cycle"}
	h.publish(t,
		msg(t, synced(failedMeta.EventId, 30*day+6*time.Second, 2), subjects.CRMContactSynced+":"+failedMeta.EventId, trace(4)),
		msg(t, retry, retryMeta.EventId, trace(5)),
		msg(t, synced(retryMeta.EventId, 33*day+time.Second, 1), subjects.CRMContactSynced+":"+retryMeta.EventId, trace(5)),
	)
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))
	v := h.customer(t, "cust_ada")
	got, _ := json.Marshal(map[string]any{"state": v["state"], "states": v["states"], "last_payment": v["last_payment"], "crm": v["crm"], "events": v["events"]})
	jsonEqual(t, "view after the retry paid", got, `{
		"state": "support ticket opened", "states": ["support ticket opened", "payment received"],
		"last_payment": {"status": "succeeded", "amount": 4900, "currency": "usd", "invoice_id": "in_2", "attempt": 2,
			"at": "2026-12-05T10:00:00Z", "event_id": "billing.payment.succeeded:in_2"},
		"crm": {"status": "synced", "source_event_id": "billing.payment.succeeded:in_2", "source_subject": "billing.payment.succeeded", "last_synced_at": "2026-12-05T10:00:01Z", "failed_event_ids": []},
		"events": 12
	}`)

	// Lookups by email and Stripe id find the same customer.
	for _, q := range []string{"email=ADA@example.com", "stripe_customer_id=cus_Ada", "stripe_event_id=evt_4"} {
		code, body := h.get(t, "/v1/customers?"+q, readToken)
		validateResponse(t, http.MethodGet, "/v1/customers", code, body)
		var res struct {
			Customers []struct {
				ID string `json:"id"`
			} `json:"customers"`
		}
		if err := json.Unmarshal(body, &res); err != nil || len(res.Customers) != 1 || res.Customers[0].ID != "cust_ada" {
			t.Fatalf("GET /v1/customers?%s = %d %s, want cust_ada", q, code, body)
		}
	}
	if code, body := h.get(t, "/v1/customers?stripe_event_id=evt_unknown", readToken); code != http.StatusOK || string(body) != "{\"customers\":[]}\n" {
		t.Fatalf("unknown Stripe event: %d %s", code, body)
	}

	// The overview counts what happened.
	code, body := h.get(t, "/v1/status", readToken)
	validateResponse(t, http.MethodGet, "/v1/status", code, body)
	var st struct {
		CRMSynced  int            `json:"crm_synced_24h"`
		CRMRetries int            `json:"crm_retries_24h"`
		Tickets    int            `json:"tickets_24h"`
		ByState    map[string]int `json:"customers_by_state"`
		Streams    map[string]int `json:"streams"`
		DLQTotal   int            `json:"dlq_total"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	_ = lifegen.Epoch
	if st.Streams["CRM"] != 6 || st.Streams["SUPPORT"] != 1 || st.ByState["support ticket opened"] != 1 || st.DLQTotal != 0 {
		t.Fatalf("status = %s", body)
	}
}

// A merge folds the merged customer's history into the survivor; the
// merged id still answers, with the survivor's view.
func TestMergedCustomerAnswersWithSurvivor(t *testing.T) {
	h := start(t, nil)
	// Find a generated customer with a merge.
	var msgs []lifegen.Msg
	for seed := uint64(0); seed < 50 && msgs == nil; seed++ {
		for _, m := range lifegen.Generate(seed, 1) {
			if m.Subject == subjects.BillingCustomerUpserted && len(m.ID()) > 7 && m.ID()[len(m.ID())-7:] == ":merged" {
				msgs = lifegen.Generate(seed, 1)
				break
			}
		}
	}
	if msgs == nil {
		t.Fatal("the generator made no merge in 50 seeds")
	}
	h.publish(t, msgs...)
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))
	survivor := h.customer(t, "cust_000001")
	viaMerged := h.customer(t, "cust_000001_dup")
	if survivor["id"] != "cust_000001" || viaMerged["id"] != "cust_000001" {
		t.Fatalf("ids: survivor %v, via merged id %v; want cust_000001 for both", survivor["id"], viaMerged["id"])
	}
	if got := survivor["merged_ids"].([]any); len(got) != 1 || got[0] != "cust_000001_dup" {
		t.Fatalf("merged_ids = %v", got)
	}
	if got := survivor["stripe_customer_ids"].([]any); len(got) != 2 {
		t.Fatalf("stripe_customer_ids = %v, want both Stripe customers", got)
	}
	if int(survivor["events"].(float64)) != len(msgs) {
		t.Fatalf("survivor has %v events, want all %d", survivor["events"], len(msgs))
	}
	var n int
	if err := h.pool.QueryRow(t.Context(), "SELECT count(*) FROM projection.customers WHERE customer_id = 'cust_000001_dup'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("merged customer still has its own row (%d, %v)", n, err)
	}
}
