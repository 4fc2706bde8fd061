package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/identity"
)

// --- building a customer's Stripe history from the fixtures ---------------

// stripeEvent is one Stripe event of a built history.
type stripeEvent struct {
	ID, Type string
	Created  int64
	Raw      []byte
}

// plan is a subscription's single item: a monthly per-unit price.
type plan struct {
	Price    string
	Unit     int64 // unit_amount, cents
	Quantity int64
}

func (p plan) mrr() int64 { return p.Unit * p.Quantity }

// history builds one customer's Stripe events from the real fixture
// envelopes (platform/devkit/testkit/fixtures/stripe/events): each event is a
// fixture with its ids, created time, data.object fields and
// data.previous_attributes edited, the way Stripe would have sent them
// for this customer. Event ids grow with the position in the history, so
// a same-second tie between two versions of one object is settled in
// favour of the later one, as Stripe's order would.
type history struct {
	t      testing.TB
	tag    string // makes this customer's object ids unique
	cus    string // Stripe customer id
	email  string
	name   string
	start  int64 // created of the first event, and of the customer
	clock  int64 // created of the newest event so far
	seq    int
	events []stripeEvent

	// The subscription as the next event will show it.
	sub                    string
	subCreated             int64
	status                 string
	plan                   plan
	periodStart, periodEnd int64
	trialStart, trialEnd   int64
	cancelAtPeriodEnd      bool
	canceledAt, endedAt    int64
	latestInvoice          string
}

const day = 24 * 60 * 60

func newHistory(t testing.TB, tag, cus, email, name string, start int64) *history {
	t.Helper()
	return &history{t: t, tag: tag, cus: cus, email: email, name: name, start: start, clock: start, sub: "sub_" + tag}
}

// fixtureEnvelope decodes a fixture envelope for editing.
func fixtureEnvelope(t testing.TB, name string) map[string]any {
	t.Helper()
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(testkit.StripeEvent(t, name)))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return ev
}

// object returns the fixture's data.object (edited in place).
func object(ev map[string]any) map[string]any {
	return ev["data"].(map[string]any)["object"].(map[string]any)
}

// nullable is Stripe's null for a zero id or timestamp.
func nullable[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// emit appends an event made from fixture, gap seconds after the previous
// one. edit fills data.object and returns data.previous_attributes (nil:
// none).
func (h *history) emit(fixture string, gap int64, edit func(o map[string]any) map[string]any) stripeEvent {
	h.t.Helper()
	ev := fixtureEnvelope(h.t, fixture)
	h.seq++
	h.clock += gap
	id := fmt.Sprintf("evt_%s%03d", h.tag, h.seq)
	ev["id"], ev["created"] = id, h.clock
	ev["request"] = map[string]any{"id": fmt.Sprintf("req_%s%03d", h.tag, h.seq), "idempotency_key": nil}
	data := ev["data"].(map[string]any)
	if prev := edit(object(ev)); prev != nil {
		data["previous_attributes"] = prev
	} else {
		delete(data, "previous_attributes")
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		h.t.Fatal(err)
	}
	e := stripeEvent{ID: id, Type: ev["type"].(string), Created: h.clock, Raw: raw}
	h.events = append(h.events, e)
	return e
}

// checkout: the signup. withCustomer false leaves only the email to say
// who signed up (a session completed before its customer was attached).
func (h *history) checkout(gap int64, withCustomer bool) stripeEvent {
	return h.emit("checkout.session.completed", gap, func(o map[string]any) map[string]any {
		o["id"] = "cs_test_" + h.tag
		o["created"] = h.clock
		o["expires_at"] = h.clock + day
		o["mode"] = "subscription"
		o["amount_subtotal"], o["amount_total"] = 0, 0 // a trial: nothing due today
		o["payment_intent"] = nil
		o["subscription"] = h.sub
		if withCustomer {
			o["customer"] = h.cus
		}
		o["customer_creation"] = "always"
		details := o["customer_details"].(map[string]any)
		details["email"], details["name"] = h.email, h.name
		return nil
	})
}

func (h *history) customerObject(o map[string]any, email, name string) {
	o["id"] = h.cus
	o["created"] = h.start
	o["email"], o["name"] = nullable(email), nullable(name)
	o["invoice_prefix"] = strings.ToUpper(h.tag)
}

// customerCreated: Stripe's customer.created, without email or name, as
// the fixture (and `stripe trigger customer.created`) has it.
func (h *history) customerCreated(gap int64) stripeEvent {
	return h.emit("customer.created", gap, func(o map[string]any) map[string]any {
		h.customerObject(o, "", "")
		return nil
	})
}

// customerEmailSet: customer.updated giving the customer its email and name.
func (h *history) customerEmailSet(gap int64) stripeEvent {
	return h.emit("customer.updated.email-set", gap, func(o map[string]any) map[string]any {
		h.customerObject(o, h.email, h.name)
		return map[string]any{"email": nil, "name": nil}
	})
}

// subscriptionObject fills a subscription fixture object with the
// history's current subscription state.
func (h *history) subscriptionObject(o map[string]any) {
	h.t.Helper()
	o["id"], o["customer"] = h.sub, h.cus
	o["created"], o["start_date"], o["billing_cycle_anchor"] = h.subCreated, h.subCreated, h.subCreated
	o["status"] = h.status
	o["current_period_start"], o["current_period_end"] = h.periodStart, h.periodEnd
	o["trial_start"], o["trial_end"] = nullable(h.trialStart), nullable(h.trialEnd)
	o["cancel_at_period_end"] = h.cancelAtPeriodEnd
	o["canceled_at"], o["ended_at"] = nullable(h.canceledAt), nullable(h.endedAt)
	reason := any(nil)
	if h.canceledAt != 0 {
		reason = "cancellation_requested"
	}
	o["cancellation_details"] = map[string]any{"comment": nil, "feedback": nil, "reason": reason}
	o["latest_invoice"] = nullable(h.latestInvoice)
	o["metadata"] = map[string]any{}
	items := o["items"].(map[string]any)
	item := items["data"].([]any)[0].(map[string]any)
	item["id"] = "si_" + h.tag
	item["subscription"] = h.sub
	item["quantity"] = h.plan.Quantity
	price := item["price"].(map[string]any)
	price["id"] = h.plan.Price
	price["unit_amount"] = h.plan.Unit
	price["unit_amount_decimal"] = fmt.Sprint(h.plan.Unit)
	items["url"] = "/v1/subscription_items?subscription=" + h.sub
}

// subscriptionCreated starts the subscription on p, trialing for 14 days
// when trial.
func (h *history) subscriptionCreated(gap int64, p plan, trial bool) stripeEvent {
	return h.emit("customer.subscription.created", gap, func(o map[string]any) map[string]any {
		h.subCreated, h.plan = h.clock, p
		h.periodStart, h.periodEnd = h.clock, h.clock+30*day
		h.status = "active"
		if trial {
			h.status = "trialing"
			h.trialStart, h.trialEnd = h.clock, h.clock+14*day
			h.periodEnd = h.trialEnd
		}
		h.subscriptionObject(o)
		return nil
	})
}

// subscriptionUpdated applies change to the subscription state and emits
// customer.subscription.updated whose previous_attributes hold the old
// value of every top-level field that changed, as Stripe sends them.
func (h *history) subscriptionUpdated(gap int64, change func()) stripeEvent {
	h.t.Helper()
	before := object(fixtureEnvelope(h.t, "customer.subscription.updated"))
	h.subscriptionObject(before)
	return h.emit("customer.subscription.updated", gap, func(o map[string]any) map[string]any {
		change()
		h.subscriptionObject(o)
		prev := map[string]any{}
		for k, old := range before {
			a, _ := json.Marshal(old)
			b, _ := json.Marshal(o[k])
			if !bytes.Equal(a, b) {
				prev[k] = old
			}
		}
		if len(prev) == 0 {
			h.t.Fatalf("subscription update %d changes nothing", h.seq)
		}
		return prev
	})
}

// trialEnded: trialing → active at the trial's end; a new period starts.
func (h *history) trialEnded() stripeEvent {
	return h.subscriptionUpdated(h.trialEnd-h.clock, func() {
		h.status = "active"
		h.periodStart, h.periodEnd = h.clock, h.clock+30*day
	})
}

func (h *history) changePlan(gap int64, p plan) stripeEvent {
	return h.subscriptionUpdated(gap, func() { h.plan = p })
}

func (h *history) setStatus(gap int64, status string) stripeEvent {
	return h.subscriptionUpdated(gap, func() { h.status = status })
}

func (h *history) scheduleCancel(gap int64) stripeEvent {
	return h.subscriptionUpdated(gap, func() { h.cancelAtPeriodEnd, h.canceledAt = true, h.clock })
}

func (h *history) withdrawCancel(gap int64) stripeEvent {
	return h.subscriptionUpdated(gap, func() { h.cancelAtPeriodEnd, h.canceledAt = false, 0 })
}

// subscriptionDeleted ends the subscription at the end of its period.
func (h *history) subscriptionDeleted() stripeEvent {
	gap := max(h.periodEnd-h.clock, 1)
	return h.emit("customer.subscription.deleted", gap, func(o map[string]any) map[string]any {
		h.status, h.endedAt = "canceled", h.clock
		if h.canceledAt == 0 {
			h.canceledAt = h.clock
		}
		h.subscriptionObject(o)
		return nil
	})
}

// payment is one attempt to collect an invoice.
type payment struct {
	Invoice, Charge string
	Amount          int64
	Attempt         int64
	Reason          string // billing_reason
	NextAttempt     int64  // failed attempts: 0 = Stripe gives up (final)
}

func (h *history) invoiceObject(o map[string]any, p payment, paid bool) {
	o["id"], o["customer"], o["customer_email"], o["customer_name"] = p.Invoice, h.cus, h.email, nullable(h.name)
	o["subscription"] = h.sub
	o["charge"], o["payment_intent"] = p.Charge, "pi_"+strings.TrimPrefix(p.Invoice, "in_")
	o["billing_reason"] = p.Reason
	o["attempt_count"], o["attempted"] = p.Attempt, true
	o["amount_due"], o["subtotal"], o["subtotal_excluding_tax"], o["total"], o["total_excluding_tax"] = p.Amount, p.Amount, p.Amount, p.Amount, p.Amount
	o["number"] = strings.ToUpper(h.tag) + "-" + strings.TrimPrefix(p.Invoice, "in_")
	o["created"], o["effective_at"], o["period_start"], o["period_end"] = h.clock, h.clock, h.periodStart, h.periodEnd
	transitions := o["status_transitions"].(map[string]any)
	transitions["finalized_at"] = h.clock
	if paid {
		o["amount_paid"], o["amount_remaining"], o["status"], o["paid"] = p.Amount, 0, "paid", true
		o["next_payment_attempt"] = nil
		transitions["paid_at"] = h.clock
	} else {
		o["amount_paid"], o["amount_remaining"], o["status"], o["paid"] = 0, p.Amount, "open", false
		o["next_payment_attempt"] = nullable(p.NextAttempt)
	}
	line := o["lines"].(map[string]any)["data"].([]any)[0].(map[string]any)
	line["amount"], line["amount_excluding_tax"], line["unit_amount_excluding_tax"] = p.Amount, p.Amount, fmt.Sprint(p.Amount)
	line["subscription"] = h.sub
	o["lines"].(map[string]any)["url"] = "/v1/invoices/" + p.Invoice + "/lines"
	h.latestInvoice = p.Invoice
}

func (h *history) invoicePaid(gap int64, p payment) stripeEvent {
	return h.emit("invoice.paid", gap, func(o map[string]any) map[string]any {
		h.invoiceObject(o, p, true)
		return nil
	})
}

func (h *history) invoicePaymentFailed(gap int64, p payment) stripeEvent {
	return h.emit("invoice.payment_failed", gap, func(o map[string]any) map[string]any {
		h.invoiceObject(o, p, false)
		return nil
	})
}

// refund: charge.refunded for refunding amount more of p's charge, of
// which before was refunded already (API 2023-10-16: the charge lists no
// refunds, previous_attributes holds the amount refunded before).
// withCustomer false leaves the charge naming only its invoice: identity
// must know the invoice or the charge already.
func (h *history) refund(gap int64, p payment, before, amount int64, withCustomer bool) stripeEvent {
	return h.emit("charge.refunded", gap, func(o map[string]any) map[string]any {
		o["id"], o["created"] = p.Charge, h.clock
		o["amount"], o["amount_captured"] = p.Amount, p.Amount
		o["amount_refunded"], o["refunded"] = before+amount, before+amount == p.Amount
		o["invoice"], o["payment_intent"] = p.Invoice, "pi_"+strings.TrimPrefix(p.Invoice, "in_")
		o["customer"] = nil
		if withCustomer {
			o["customer"] = h.cus
		}
		o["receipt_url"] = strings.ReplaceAll(o["receipt_url"].(string), "ch_1NzlYeGgdF1VjufLh34inorG", p.Charge)
		o["balance_transaction"] = "txn_" + strings.TrimPrefix(p.Charge, "ch_")
		prev := map[string]any{"amount_refunded": before}
		if before+amount == p.Amount {
			prev["refunded"] = false
		}
		return prev
	})
}

// dispute: charge.dispute.created for a charge, named by id only (the
// dispute fixture's shape): identity must know the charge already.
func (h *history) dispute(gap int64, id string, p payment) stripeEvent {
	return h.emit("charge.dispute.created", gap, func(o map[string]any) map[string]any {
		o["id"], o["created"] = id, h.clock
		o["charge"], o["payment_intent"] = p.Charge, "pi_"+strings.TrimPrefix(p.Invoice, "in_")
		o["amount"] = p.Amount
		o["evidence_details"].(map[string]any)["due_by"] = h.clock + 9*day
		return nil
	})
}

// --- reading billing.> ------------------------------------------------------

// billingMsg is one stored billing.> message, decoded with proto/subjects.
type billingMsg struct {
	Subject, MsgID string
	Event          subjects.BillingEvent
}

// billingMessages reads the BILLING stream in order and checks the
// envelope every billing message must have.
func billingMessages(t testing.TB, js jetstream.JetStream) []billingMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []billingMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("billing message %d: %v", seq, err)
		}
		decoded, err := subjects.Decode(m.Subject, m.Data)
		if err != nil {
			t.Fatalf("%s: %v", m.Subject, err)
		}
		ev, ok := decoded.(subjects.BillingEvent)
		if !ok {
			t.Fatalf("%s is not a billing event", m.Subject)
		}
		id := m.Header.Get(wire.HeaderMsgID)
		if ev.GetMeta().GetEventId() != id {
			t.Errorf("%s: meta.event_id %q != Nats-Msg-Id %q", m.Subject, ev.GetMeta().GetEventId(), id)
		}
		out = append(out, billingMsg{Subject: m.Subject, MsgID: id, Event: ev})
	}
	return out
}

// streamCount is the number of messages stored in a stream.
func streamCount(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitSettled waits until identity's consumer has acked every Stripe event
// delivered (nothing pending, nothing awaiting ack or redelivery) and n
// billing messages are stored.
func waitSettled(t testing.TB, js jetstream.JetStream, n uint64) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("identity to settle every Stripe event and store %d billing messages", n), func() bool {
		c, err := js.Consumer(context.Background(), natsbus.StreamStripe, identity.DefaultConsumerName)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return false
		}
		return info.NumPending == 0 && info.NumAckPending == 0 &&
			info.AckFloor.Stream == streamCount(t, js, natsbus.StreamStripe) &&
			streamCount(t, js, natsbus.StreamBilling) >= n
	})
}

// --- the lifecycle ----------------------------------------------------------

// lifecycle is one customer's full history: signup through checkout, a
// trial, payments, an upgrade, a failed and recovered payment, a
// downgrade, a cancellation, a refund and a dispute. Every event names the
// Stripe customer cus_LifeJenny01, the dispute through the charge of the
// first invoice.
type lifecycle struct {
	events []stripeEvent
	// Payments the refund and the dispute refer to.
	first, proration payment
}

const (
	lifeCus   = "cus_LifeJenny01"
	lifeEmail = "jenny.rosen@example.com"
	lifeName  = "Jenny Rosen"
	lifeStart = 1698249600 // 2023-10-25T16:00:00Z
)

var (
	planStarter = plan{Price: "price_LifeStarter", Unit: 2000, Quantity: 1} // MRR 20.00
	planPro     = plan{Price: "price_LifePro", Unit: 2500, Quantity: 2}     // MRR 50.00
	planBasic   = plan{Price: "price_LifeBasic", Unit: 1000, Quantity: 1}   // MRR 10.00
)

func buildLifecycle(t testing.TB) lifecycle {
	t.Helper()
	h := newHistory(t, "life", lifeCus, lifeEmail, lifeName, lifeStart)
	// Signup: the checkout names the customer and the email typed in it
	// (unverified); the customer object is created without an email, then
	// given one: only from then on is the customer's email known.
	h.checkout(0, true)
	h.customerCreated(1)
	h.customerEmailSet(1)
	// A 14-day trial on Starter, then active: the first invoice is paid.
	h.subscriptionCreated(1, planStarter, true)
	h.trialEnded()
	first := payment{Invoice: "in_Life0001", Charge: "ch_Life0001", Amount: 2000, Attempt: 1, Reason: "subscription_cycle"}
	h.invoicePaid(5, first)
	// Upgrade to Pro (MRR 20.00 → 50.00); the proration invoice fails on
	// its first attempt (Stripe retries in 3 days), and is paid then.
	h.changePlan(10*day, planPro)
	failed := payment{Invoice: "in_Life0002", Charge: "ch_Life0002", Amount: 1500, Attempt: 1, Reason: "subscription_update"}
	failed.NextAttempt = h.clock + 60 + 3*day
	h.invoicePaymentFailed(60, failed)
	recovered := payment{Invoice: "in_Life0002", Charge: "ch_Life0003", Amount: 1500, Attempt: 2, Reason: "subscription_update"}
	h.invoicePaid(3*day, recovered)
	// Downgrade to Basic (MRR 50.00 → 10.00), cancel at the period end,
	// and the period ends.
	h.changePlan(5*day, planBasic)
	h.scheduleCancel(2 * day)
	h.subscriptionDeleted()
	// 5.00 of the recovered payment is refunded; the first is disputed.
	h.refund(day, recovered, 0, 500, true)
	h.dispute(day, "dp_Life0001", first)
	return lifecycle{events: h.events, first: first, proration: recovered}
}

// wantLifecycle is the exact billing.> output of the lifecycle, in
// delivery order: for each Stripe event, the domain events it yields.
func wantLifecycle(lc lifecycle) []billingMsg {
	ev := lc.events
	canon := identity.CanonicalID(identity.Identifier{Kind: identity.LinkStripeCustomer, Value: lifeCus})
	at := func(sec int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(sec, 0)) }
	// A message id is "<subject>:<key>": the key of a state change is its
	// Stripe event id, the key of a fact the Stripe object it is about
	// (invoice; invoice and attempt; charge and amount refunded so far;
	// dispute), because Stripe announces one fact in several events.
	meta := func(subject string, i int, key string) *billingv1.EventMeta {
		if key == "" {
			key = ev[i].ID
		}
		return &billingv1.EventMeta{
			EventId: subject + ":" + key, CanonicalCustomerId: canon, SourceEventIds: []string{ev[i].ID},
			OccurredAt: at(ev[i].Created), StripeCustomerId: lifeCus, Email: lifeEmail,
		}
	}
	planMsg := func(p plan) *billingv1.Plan {
		return &billingv1.Plan{
			PriceId: p.Price, ProductId: "prod_OnMHDH6VBmYlTr", Quantity: p.Quantity, AmountPerInterval: p.mrr(),
			Currency: "usd", Interval: billingv1.Interval_INTERVAL_MONTH, IntervalCount: 1, Mrr: p.mrr(),
		}
	}
	// The subscription's clock: created at lifeStart+3, a 14-day trial,
	// then one 30-day period that ends with the cancellation.
	trialStart := int64(lifeStart + 3)
	trialEnd := trialStart + 14*day
	periodEnd := trialEnd + 30*day
	sub := func(status billingv1.SubscriptionStatus, p plan, cancelAtPeriodEnd bool) *billingv1.Subscription {
		s := &billingv1.Subscription{
			SubscriptionId: "sub_life", Status: status, Plan: planMsg(p),
			CurrentPeriodStart: at(trialEnd), CurrentPeriodEnd: at(periodEnd), TrialEnd: at(trialEnd),
			CancelAtPeriodEnd: cancelAtPeriodEnd,
		}
		if status == billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_TRIALING {
			s.CurrentPeriodStart, s.CurrentPeriodEnd = at(trialStart), at(trialEnd)
		}
		return s
	}
	active := billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE
	msg := func(subject string, m subjects.BillingEvent) billingMsg {
		return billingMsg{Subject: subject, MsgID: m.GetMeta().GetEventId(), Event: m}
	}
	// email is the verified email known when the event was handled (in
	// delivery order), unverified the one the event itself carries.
	upserted := func(i int, email, unverified string) billingMsg {
		m := meta(subjects.BillingCustomerUpserted, i, "")
		m.Email, m.UnverifiedEmail = email, unverified
		return msg(subjects.BillingCustomerUpserted, &billingv1.CustomerUpserted{
			Meta: m, Email: email, Name: lifeName, StripeCustomerIds: []string{lifeCus},
		})
	}
	// invoiceMeta: an invoice carries Stripe's copy of the customer's email,
	// frozen at finalisation: unverified.
	invoiceMeta := func(subject string, i int, key string) *billingv1.EventMeta {
		m := meta(subject, i, key)
		m.UnverifiedEmail = lifeEmail
		return m
	}
	paid := func(i int, p payment) billingMsg {
		return msg(subjects.BillingPaymentSucceeded, &billingv1.PaymentSucceeded{
			Meta: invoiceMeta(subjects.BillingPaymentSucceeded, i, p.Invoice), InvoiceId: p.Invoice, SubscriptionId: "sub_life",
			ChargeId: p.Charge, PaymentIntentId: "pi_" + strings.TrimPrefix(p.Invoice, "in_"), Amount: p.Amount,
			Currency: "usd", AttemptCount: int32(p.Attempt), BillingReason: p.Reason,
		})
	}
	return []billingMsg{
		upserted(0, "", lifeEmail), // checkout.session.completed: the signup, its email typed
		upserted(1, "", ""),        // customer.created, without an email
		upserted(2, lifeEmail, ""), // customer.updated (email set)
		msg(subjects.BillingSubscriptionStarted, &billingv1.SubscriptionStarted{
			Meta:         meta(subjects.BillingSubscriptionStarted, 3, ""),
			Subscription: sub(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_TRIALING, planStarter, false),
		}),
		// 4: trialing → active has no subject of its own.
		paid(5, lc.first),
		msg(subjects.BillingSubscriptionUpgraded, &billingv1.SubscriptionUpgraded{
			Meta: meta(subjects.BillingSubscriptionUpgraded, 6, ""), Subscription: sub(active, planPro, false), PreviousPlan: planMsg(planStarter),
		}),
		msg(subjects.BillingPaymentFailed, &billingv1.PaymentFailed{
			Meta: invoiceMeta(subjects.BillingPaymentFailed, 7, "in_Life0002:1"), InvoiceId: "in_Life0002", SubscriptionId: "sub_life",
			ChargeId: "ch_Life0002", PaymentIntentId: "pi_Life0002", Amount: 1500, Currency: "usd", AttemptCount: 1,
			NextPaymentAttempt: at(ev[7].Created + 3*day), Final: false, BillingReason: "subscription_update",
		}),
		paid(8, lc.proration),
		msg(subjects.BillingSubscriptionDowngraded, &billingv1.SubscriptionDowngraded{
			Meta: meta(subjects.BillingSubscriptionDowngraded, 9, ""), Subscription: sub(active, planBasic, false), PreviousPlan: planMsg(planPro),
		}),
		msg(subjects.BillingSubscriptionCanceled, &billingv1.SubscriptionCanceled{
			Meta: meta(subjects.BillingSubscriptionCanceled, 10, ""), Subscription: sub(active, planBasic, true),
			AtPeriodEnd: true, CancelAt: at(periodEnd), CancellationReason: "cancellation_requested",
		}),
		msg(subjects.BillingSubscriptionCanceled, &billingv1.SubscriptionCanceled{
			Meta: meta(subjects.BillingSubscriptionCanceled, 11, ""), Subscription: sub(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_CANCELED, planBasic, true),
			AtPeriodEnd: false, CancelAt: at(periodEnd), CancellationReason: "cancellation_requested",
		}),
		msg(subjects.BillingRefundIssued, &billingv1.RefundIssued{
			Meta: meta(subjects.BillingRefundIssued, 12, "ch_Life0003:500"), ChargeId: "ch_Life0003", PaymentIntentId: "pi_Life0002",
			Amount: 500, Currency: "usd", ChargeFullyRefunded: false,
		}),
		msg(subjects.BillingDisputeOpened, &billingv1.DisputeOpened{
			Meta: meta(subjects.BillingDisputeOpened, 13, "dp_Life0001"),
			Dispute: &billingv1.Dispute{
				DisputeId: "dp_Life0001", ChargeId: "ch_Life0001", PaymentIntentId: "pi_Life0001", Amount: 2000,
				Currency: "usd", Reason: "general", Status: "warning_needs_response",
			},
			EvidenceDueBy: at(ev[13].Created + 9*day),
		}),
	}
}

func text(m proto.Message) string {
	return prototext.MarshalOptions{Multiline: true, Indent: "  "}.Format(m)
}

// replayLifecycle delivers the lifecycle to identity.Run on a fresh broker
// and database with the given number of workers and returns what it
// published once every Stripe event is settled.
func replayLifecycle(t *testing.T, lc lifecycle, workers string, n int) []billingMsg {
	t.Helper()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	h := startIdentity(t, b.URL, js, map[string]string{"IDENTITY_WORKERS": workers})
	for _, e := range lc.events {
		h.deliver(t, e.Raw)
	}
	waitSettled(t, js, uint64(n))
	if dl := streamCount(t, js, natsbus.StreamDLQ); dl != 0 {
		t.Errorf("%d dead letters, want none", dl)
	}
	return billingMessages(t, js)
}

// TestLifecycleReplay replays one customer's full lifecycle, built from the
// real fixture shapes, through the running service: signup via checkout →
// trial → active → upgrade → failed payment → recovered → downgrade →
// cancel → refund → dispute. With one worker the events are handled in
// delivery order and the billing.> output is asserted exactly: subjects,
// message ids, order and every field. With eight workers
// handling is concurrent: the same messages, the same ids, the same
// fields, except the snapshot a message carries of when identity handled
// its event: the email and name known then, and superseded (a newer
// version of the customer or subscription had been handled first).
func TestLifecycleReplay(t *testing.T) {
	lc := buildLifecycle(t)
	want := wantLifecycle(lc)

	t.Run("one worker, exact output in order", func(t *testing.T) {
		t.Parallel()
		got := replayLifecycle(t, lc, "1", len(want))
		if len(got) != len(want) {
			t.Errorf("%d billing messages, want %d", len(got), len(want))
		}
		for i := range max(len(got), len(want)) {
			switch {
			case i >= len(got):
				t.Errorf("#%d missing: %s %s", i, want[i].Subject, want[i].MsgID)
			case i >= len(want):
				t.Errorf("#%d unexpected: %s %s", i, got[i].Subject, got[i].MsgID)
			case got[i].Subject != want[i].Subject || got[i].MsgID != want[i].MsgID:
				t.Errorf("#%d is %s %s, want %s %s", i, got[i].Subject, got[i].MsgID, want[i].Subject, want[i].MsgID)
			case !proto.Equal(got[i].Event, want[i].Event):
				t.Errorf("#%d %s:\ngot\n%s\nwant\n%s", i, got[i].Subject, text(got[i].Event), text(want[i].Event))
			}
		}
	})

	t.Run("eight workers, same messages", func(t *testing.T) {
		t.Parallel()
		got := replayLifecycle(t, lc, "8", len(want))
		byID := map[string]billingMsg{}
		for _, m := range got {
			if _, dup := byID[m.MsgID]; dup {
				t.Errorf("%s stored twice", m.MsgID)
			}
			byID[m.MsgID] = m
		}
		if len(got) != len(want) {
			t.Errorf("%d billing messages, want %d", len(got), len(want))
		}
		for _, w := range want {
			g, ok := byID[w.MsgID]
			if !ok {
				t.Errorf("missing %s", w.MsgID)
				continue
			}
			if g.Subject != w.Subject {
				t.Errorf("%s on %s, want %s", w.MsgID, g.Subject, w.Subject)
			}
			if g.Event.GetMeta().GetSuperseded() && !stateChange(g.Subject) {
				t.Errorf("%s is a fact but marked superseded", g.MsgID)
			}
			ge, we := withoutSnapshot(g.Event), withoutSnapshot(w.Event)
			if !proto.Equal(ge, we) {
				t.Errorf("%s (email, name and superseded aside):\ngot\n%s\nwant\n%s", w.MsgID, text(ge), text(we))
			}
		}
		if t.Failed() {
			ids := slices.Sorted(maps.Keys(byID))
			t.Logf("stored: %v", ids)
		}
	})
}

// withoutSnapshot clears what a billing message says about the moment
// identity handled its event rather than about the event: the email and
// name known then, and whether a newer version of the object had been
// applied already (superseded).
func withoutSnapshot(m subjects.BillingEvent) subjects.BillingEvent {
	c := proto.Clone(m).(subjects.BillingEvent)
	c.GetMeta().Email, c.GetMeta().Superseded = "", false
	if u, ok := c.(*billingv1.CustomerUpserted); ok {
		u.Email, u.Name = "", ""
	}
	return c
}

// stateChange reports whether subject is a state change of a versioned
// Stripe object (a customer or a subscription), the only kind of message
// that can be superseded; payments, refunds and disputes are facts.
func stateChange(subject string) bool {
	return subject == subjects.BillingCustomerUpserted || strings.HasPrefix(subject, "billing.subscription.")
}
