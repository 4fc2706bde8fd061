// Package lifegen generates customer lifecycles as the hub's services
// publish them — billing events, CRM and support outcomes, merges, late
// and superseded events — for the projector's tests and benchmarks.
package lifegen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	commonv1 "github.com/switchyard/switchyard/proto/gen/switchyard/common/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

// Msg is one message as published.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
}

// ID is the message id (Nats-Msg-Id).
func (m Msg) ID() string { return m.Header.Get(wire.HeaderMsgID) }

// Epoch is when generated histories start.
var Epoch = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

type gen struct {
	rng  *rand.Rand
	out  []Msg
	seq  int
	cust int
}

// Generate returns the messages of n customers' lifecycles in publish
// order. The same seed gives the same messages.
func Generate(seed uint64, n int) []Msg { return GenerateRange(seed, 1, n) }

// GenerateRange is Generate for customers first to first+n-1 (their ids
// and their invoices, hence message ids, are distinct from other ranges).
func GenerateRange(seed uint64, first, n int) []Msg {
	g := &gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), cust: first - 1, seq: (first - 1) * 100}
	for range n {
		g.customer()
	}
	return g.out
}

func (g *gen) emit(m proto.Message, id string) {
	subj, err := subjects.Of(m)
	if err != nil {
		panic(err)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	h := nats.Header{}
	h.Set(wire.HeaderMsgID, id)
	h.Set("traceparent", fmt.Sprintf("00-%016x%016x-%016x-01", g.rng.Uint64()|1, g.rng.Uint64(), g.rng.Uint64()|1))
	g.out = append(g.out, Msg{Subject: subj, Data: data, Header: h})
}

func (g *gen) evt() string {
	g.seq++
	return fmt.Sprintf("evt_%06d%04x", g.seq, g.rng.IntN(1<<16))
}

type customer struct {
	g       *gen
	id      string
	stripe  string
	email   string
	at      time.Time
	plan    *billingv1.Plan
	sub     string
	invoice int
}

func (c *customer) meta(subject string, stripeEvt string, superseded bool) *billingv1.EventMeta {
	return &billingv1.EventMeta{EventId: subject + ":" + stripeEvt, CanonicalCustomerId: c.id, SourceEventIds: []string{stripeEvt},
		OccurredAt: timestamppb.New(c.at), StripeCustomerId: c.stripe, Email: c.email, Superseded: superseded}
}

// tick moves the customer's clock by 1 to 3 seconds, or not at all (a
// same-second tie, which Stripe's 1-second created makes common).
func (c *customer) tick() {
	c.at = c.at.Add(time.Duration(c.g.rng.IntN(4)) * time.Second)
}

func (c *customer) subscription(status billingv1.SubscriptionStatus) *billingv1.Subscription {
	return &billingv1.Subscription{SubscriptionId: c.sub, Status: status, Plan: c.plan,
		CurrentPeriodStart: timestamppb.New(c.at), CurrentPeriodEnd: timestamppb.New(c.at.AddDate(0, 1, 0))}
}

// billing publishes a billing event and, usually, the CRM's outcomes for it.
func (c *customer) billing(m subjects.BillingEvent) {
	meta := m.GetMeta()
	c.g.emit(m, meta.GetEventId())
	if meta.GetEmail() == "" {
		return
	}
	// Outcomes are stamped by the services' clocks, to the nanosecond.
	at := c.at.Add(500*time.Millisecond + time.Duration(c.g.rng.IntN(1e6)))
	crmID := func(kind string) string { return kind + ":" + meta.GetEventId() }
	switch r := c.g.rng.IntN(10); {
	case r < 6:
		c.g.emit(&crmv1.ContactSynced{EventId: crmID(subjects.CRMContactSynced), CanonicalCustomerId: c.id, SourceEventId: meta.GetEventId(),
			OccurredAt: timestamppb.New(at), ContactId: "hs_" + c.id, Attempt: 1, Provider: "hubspot"}, crmID(subjects.CRMContactSynced))
	case r < 8:
		c.g.emit(&crmv1.ContactPendingRetry{EventId: crmID(subjects.CRMContactPendingRetry) + ":1", CanonicalCustomerId: c.id, SourceEventId: meta.GetEventId(),
			OccurredAt: timestamppb.New(at), Attempt: 1, Provider: "hubspot", NextAttemptAt: timestamppb.New(at.Add(5 * time.Second)),
			ErrorClass: commonv1.ErrorClass_ERROR_CLASS_TRANSIENT, Reason: "hubspot: 429 Too Many Requests"}, crmID(subjects.CRMContactPendingRetry)+":1")
		if c.g.rng.IntN(2) == 0 {
			c.g.emit(&crmv1.ContactSynced{EventId: crmID(subjects.CRMContactSynced), CanonicalCustomerId: c.id, SourceEventId: meta.GetEventId(),
				OccurredAt: timestamppb.New(at.Add(5 * time.Second)), ContactId: "hs_" + c.id, Attempt: 2, Provider: "hubspot"}, crmID(subjects.CRMContactSynced))
		}
	case r < 9:
		c.g.emit(&crmv1.ContactFailed{EventId: crmID(subjects.CRMContactFailed), CanonicalCustomerId: c.id, SourceEventId: meta.GetEventId(),
			OccurredAt: timestamppb.New(at), Attempt: 1, Provider: "hubspot", ErrorClass: commonv1.ErrorClass_ERROR_CLASS_PERMANENT,
			Reason: "hubspot: 400 VALIDATION_ERROR"}, crmID(subjects.CRMContactFailed))
	default:
		// the CRM has not reported yet
	}
}

func (c *customer) ticket(source, rule string, prio supportv1.Priority, critical bool) {
	at := c.at.Add(700*time.Millisecond + time.Duration(c.g.rng.IntN(1e6)))
	if c.g.rng.IntN(5) == 0 {
		id := subjects.SupportTicketFailed + ":" + source + ":" + rule
		c.g.emit(&supportv1.TicketFailed{EventId: id, CanonicalCustomerId: c.id, SourceEventId: source, OccurredAt: timestamppb.New(at), Rule: rule,
			Priority: prio, Provider: "zendesk", Attempt: 6, ErrorClass: commonv1.ErrorClass_ERROR_CLASS_TRANSIENT, Reason: "zendesk: 503", Critical: critical}, id)
		return
	}
	id := subjects.SupportTicketOpened + ":" + source + ":" + rule
	c.g.emit(&supportv1.TicketOpened{EventId: id, CanonicalCustomerId: c.id, SourceEventId: source, OccurredAt: timestamppb.New(at), Rule: rule,
		TicketId: fmt.Sprint(1000 + c.g.seq), Priority: prio, Provider: "zendesk", ExternalId: "switchyard:" + source + ":" + rule, Group: "Billing"}, id)
}

// customer generates one customer's life: created (sometimes as two
// canonical ids merged later), a subscription started, then up to three
// of upgrade, payment, failed payment, cancellation, refund and dispute.
func (g *gen) customer() {
	g.cust++
	c := &customer{g: g, id: fmt.Sprintf("cust_%06d", g.cust), stripe: fmt.Sprintf("cus_G%06d", g.cust),
		email: fmt.Sprintf("user%d@example.com", g.cust), at: Epoch.Add(time.Duration(g.rng.IntN(86400)) * time.Second),
		sub: fmt.Sprintf("sub_G%06d", g.cust)}
	mrr := int64(1000 * (1 + g.rng.IntN(20)))
	c.plan = &billingv1.Plan{PriceId: "price_basic", ProductName: "Basic", Quantity: 1, AmountPerInterval: mrr, Currency: "usd", Interval: billingv1.Interval_INTERVAL_MONTH, IntervalCount: 1, Mrr: mrr}

	e := g.evt()
	c.billing(&billingv1.CustomerUpserted{Meta: c.meta(subjects.BillingCustomerUpserted, e, false), Email: c.email, Name: "Customer " + fmt.Sprint(g.cust), StripeCustomerIds: []string{c.stripe}})
	if g.rng.IntN(8) == 0 {
		c.duplicate()
	}
	c.tick()
	c.start()
	for range g.rng.IntN(4) {
		c.tick()
		switch g.rng.IntN(7) {
		case 0:
			c.upgrade()
		case 1, 2:
			c.pay(true, 1, false)
		case 3:
			c.pay(false, 1, false)
			if g.rng.IntN(2) == 0 {
				c.tick()
				c.pay(false, 2, g.rng.IntN(2) == 0)
			}
		case 4:
			c.cancel()
		case 5:
			c.refund()
		case 6:
			c.dispute()
		}
	}
}

// duplicate mints a second canonical id for the same person, merged into
// this one later.
func (c *customer) duplicate() {
	g := c.g
	dup := &customer{g: g, id: c.id + "_dup", stripe: c.stripe + "b", email: c.email, at: c.at, plan: c.plan, sub: c.sub + "b"}
	de := g.evt()
	dup.billing(&billingv1.CustomerUpserted{Meta: dup.meta(subjects.BillingCustomerUpserted, de, false), Email: c.email, StripeCustomerIds: []string{dup.stripe}})
	c.tick()
	me := g.evt()
	m := c.meta(subjects.BillingCustomerUpserted, me, false)
	m.EventId += ":merged"
	c.billing(&billingv1.CustomerUpserted{Meta: m, Email: c.email, StripeCustomerIds: []string{c.stripe, dup.stripe}, MergedCanonicalIds: []string{dup.id}})
}

// start starts the subscription (a trial one time in six), paid at once
// half the time.
func (c *customer) start() {
	g := c.g
	se := g.evt()
	status := billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE
	if g.rng.IntN(6) == 0 {
		status = billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_TRIALING
	}
	c.billing(&billingv1.SubscriptionStarted{Meta: c.meta(subjects.BillingSubscriptionStarted, se, false), Subscription: c.subscription(status)})
	if g.rng.IntN(2) == 0 {
		c.pay(true, 1, false)
	}
}

// upgrade moves to the Pro plan, sometimes followed by a late event from
// the same second that is already superseded.
func (c *customer) upgrade() {
	g := c.g
	up := proto.Clone(c.plan).(*billingv1.Plan)
	up.PriceId, up.ProductName, up.Mrr, up.AmountPerInterval = "price_pro", "Pro", c.plan.GetMrr()*2, c.plan.GetMrr()*2
	prev := c.plan
	c.plan = up
	ue := g.evt()
	c.billing(&billingv1.SubscriptionUpgraded{Meta: c.meta(subjects.BillingSubscriptionUpgraded, ue, false), Subscription: c.subscription(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE), PreviousPlan: prev})
	if g.rng.IntN(3) == 0 {
		le := g.evt()
		old := proto.Clone(c.subscription(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE)).(*billingv1.Subscription)
		old.Plan = prev
		c.billing(&billingv1.SubscriptionDowngraded{Meta: c.meta(subjects.BillingSubscriptionDowngraded, le, true), Subscription: old, PreviousPlan: up})
	}
}

// cancel cancels the subscription, with its support ticket.
func (c *customer) cancel() {
	ce := c.g.evt()
	c.billing(&billingv1.SubscriptionCanceled{Meta: c.meta(subjects.BillingSubscriptionCanceled, ce, false),
		Subscription: c.subscription(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_CANCELED), CancellationReason: "cancellation_requested"})
	c.ticket(subjects.BillingSubscriptionCanceled+":"+ce, "cancellation", supportv1.Priority_PRIORITY_NORMAL, true)
}

// refund refunds a month, with its support ticket.
func (c *customer) refund() {
	re := c.g.evt()
	id := "re_" + re[4:]
	m := c.meta(subjects.BillingRefundIssued, re, false)
	m.EventId = subjects.BillingRefundIssued + ":" + id
	c.billing(&billingv1.RefundIssued{Meta: m, RefundId: id, ChargeId: "ch_1", Amount: c.plan.GetMrr(), Currency: "usd", Status: "succeeded"})
	c.ticket(m.GetEventId(), "refund", supportv1.Priority_PRIORITY_LOW, true)
}

// dispute opens a chargeback, with its support ticket, won half the time.
func (c *customer) dispute() {
	g := c.g
	de := g.evt()
	d := &billingv1.Dispute{DisputeId: "dp_" + de[4:], ChargeId: "ch_1", Amount: c.plan.GetMrr(), Currency: "usd", Reason: "fraudulent", Status: "needs_response"}
	m := c.meta(subjects.BillingDisputeOpened, de, false)
	m.EventId = subjects.BillingDisputeOpened + ":" + d.GetDisputeId()
	c.billing(&billingv1.DisputeOpened{Meta: m, Dispute: d, EvidenceDueBy: timestamppb.New(c.at.AddDate(0, 0, 7))})
	c.ticket(m.GetEventId(), "chargeback", supportv1.Priority_PRIORITY_URGENT, true)
	if g.rng.IntN(2) == 0 {
		c.tick()
		ce := g.evt()
		m := c.meta(subjects.BillingDisputeClosed, ce, false)
		m.EventId = subjects.BillingDisputeClosed + ":" + d.GetDisputeId()
		c.billing(&billingv1.DisputeClosed{Meta: m, Dispute: d, Outcome: billingv1.DisputeOutcome_DISPUTE_OUTCOME_WON})
	}
}

// pay publishes a payment outcome for the next invoice (or a retry of the
// current one).
func (c *customer) pay(ok bool, attempt int32, final bool) {
	if attempt == 1 {
		c.invoice++
	}
	inv := fmt.Sprintf("in_%s_%d", c.id, c.invoice)
	e := c.g.evt()
	if ok {
		m := c.meta(subjects.BillingPaymentSucceeded, e, false)
		m.EventId = subjects.BillingPaymentSucceeded + ":" + inv
		c.billing(&billingv1.PaymentSucceeded{Meta: m, InvoiceId: inv, SubscriptionId: c.sub, Amount: c.plan.GetMrr(), Currency: "usd", AttemptCount: attempt, BillingReason: "subscription_cycle"})
		return
	}
	m := c.meta(subjects.BillingPaymentFailed, e, false)
	m.EventId = fmt.Sprintf("%s:%s:%d", subjects.BillingPaymentFailed, inv, attempt)
	pf := &billingv1.PaymentFailed{Meta: m, InvoiceId: inv, SubscriptionId: c.sub, Amount: c.plan.GetMrr(), Currency: "usd", AttemptCount: attempt,
		Final: final, FailureCode: "card_declined", DeclineCode: "insufficient_funds", BillingReason: "subscription_cycle"}
	if !final {
		pf.NextPaymentAttempt = timestamppb.New(c.at.AddDate(0, 0, 3))
	}
	c.billing(pf)
	prio := supportv1.Priority_PRIORITY_HIGH
	if final {
		prio = supportv1.Priority_PRIORITY_URGENT
	}
	c.ticket(m.GetEventId(), "payment_failed", prio, false)
}
