package identity

// Mapping from Stripe events to billing.> domain events (Derive).
//
// Every message carries EventMeta: event_id = MsgID, canonical_customer_id,
// source_event_ids = [evt], occurred_at = event.created, livemode,
// stripe_customer_id, email (from Identity, else from Facts: the Stripe
// Customer object's only) and unverified_email (the event's own, from
// Facts: what a payer typed, or an invoice's frozen copy). The MsgID
// of a state change is "<subject>:<evt id>"; the MsgID of a fact about one
// Stripe object is keyed by that object — payments "<subject>:<in id>"
// (failures "…:<in id>:<attempt>"), refunds "<subject>:<re id>" (or
// "<subject>:<ch id>:<cumulative amount refunded>"), disputes
// "<subject>:<dp id>" — because Stripe announces one fact in several events.
// Reprocessing always yields the same ids.
//
//	Stripe event                        condition                                  domain event (subject)
//	customer.created, customer.updated  always (the service decides what changed)  billing.customer.upserted          S
//	checkout.session.completed          the session names a Stripe customer, or    billing.customer.upserted
//	                                      resolved to one (a guest checkout: none)
//	customer.subscription.created       status trialing or active                  billing.subscription.started       S
//	                                    (incomplete: nothing yet, see updated)
//	customer.subscription.updated       status incomplete -> active/trialing       billing.subscription.started       S
//	                                    status past_due/unpaid/paused/canceled
//	                                      -> active/trialing                       billing.subscription.reactivated   S
//	                                    status * -> past_due                       billing.subscription.past_due      S
//	                                    cancellation scheduled (cancel_at_period_end
//	                                      false -> true, or cancel_at set)         billing.subscription.canceled      S
//	                                      {at_period_end: true, cancel_at: cancel_at, else current_period_end}
//	                                    scheduled cancellation withdrawn           billing.subscription.reactivated   S
//	                                      (previous_status: the status before; one event if both apply)
//	                                    plan changed (previous_attributes items,
//	                                      plan or quantity) and MRR up             billing.subscription.upgraded      S
//	                                    ... and MRR down                           billing.subscription.downgraded    S
//	                                    (same MRR, or an amount Stripe does not state: nothing)
//	customer.subscription.deleted       always                                     billing.subscription.canceled      S
//	                                      {at_period_end: false, cancel_at: ended_at, else canceled_at}
//	customer.subscription.trial_will_end always                                    billing.subscription.trial_ending
//	invoice.paid                        always                                     billing.payment.succeeded
//	invoice.payment_succeeded           always (a second event: see below)         billing.payment.succeeded
//	invoice.payment_failed              always; final = next_payment_attempt null  billing.payment.failed
//	charge.refunded                     one per refund in refunds.data that is not billing.refund.issued
//	                                      in previous_attributes.refunds; without
//	                                      refunds.data (API >= 2022-11-15): one for
//	                                      amount_refunded - previous amount_refunded,
//	                                      none if that is 0
//	charge.dispute.created              always                                     billing.dispute.opened
//	charge.dispute.closed               always; outcome from status won/lost/
//	                                      warning_closed                           billing.dispute.closed
//	anything else                       -                                          none (nil, nil)
//
// S: state-changing; not emitted when the event is stale (a newer version
// of the object was already applied). The others are facts and are
// emitted whatever the order.
//
// One update can produce several events, in the order started,
// reactivated, past_due, canceled, upgraded/downgraded; each has its own
// subject and so its own MsgID. Transitions are read from
// previous_attributes, so a transition carried only by a stale event is
// not emitted by a later one either. Status changes with no subject of
// their own (trialing -> active, -> unpaid, -> paused,
// -> incomplete_expired) emit nothing; the state rides on the next event.
//
// Stripe sends invoice.paid and invoice.payment_succeeded for the same
// payment. Both become billing.payment.succeeded with the same MsgID (the
// invoice's), so JetStream and consumers' ledgers keep one.
//
// MRR: per item, the amount per interval (unit_amount, or
// unit_amount_decimal, times the quantity after transform_quantity) scaled
// to a month (year / 12, week * 52 / 12, day * 365 / 12, each divided by
// interval_count), summed over the items and rounded half up once, in minor
// units. Tiered prices (Stripe does not include their tiers in events)
// count 0 and make an upgrade/downgrade undecidable; metered items count 0.
// Plan names the first item (price, product, quantity, interval); its
// amount_per_interval and mrr are totals over all items (Stripe requires
// one billing interval per subscription).
//
// Free-form metadata is never read; payment failures carry Stripe's codes
// and customer-safe message from an expanded charge, never card data.
//
// Every string of every message is normalised on the way out
// (normaliseMessage): Derive reads text straight from the Stripe object
// (product and price names, decline messages, reasons), and no text may
// leave identity that a subscriber's store or vendor cannot hold.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v76"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// Identity is what the service resolved for the event.
type Identity struct {
	CanonicalID string
	// StripeCustomerID may be resolved through a charge or invoice link
	// when the event lacks it.
	StripeCustomerID string
	// Email is the profile's: only ever a Stripe Customer object's.
	Email string
	Name  string
	// StripeCustomerIDs lists every Stripe customer linked to the
	// canonical customer (for CustomerUpserted); Derive sorts a copy.
	StripeCustomerIDs []string
}

// Outgoing is one domain event to publish.
type Outgoing struct {
	// Subject is one of the billing subjects of package subjects.
	Subject string
	// MsgID is derived from the source Stripe event id and the event kind
	// (see the mapping table above); it equals Message's meta.event_id and
	// is the Nats-Msg-Id to publish with.
	MsgID   string
	Message proto.Message
}

// Derive maps one Stripe event to its domain events, following the table
// at the top of this file. stale reports that a newer version of the same
// object was already applied: state-changing events are then not emitted,
// facts (payments, refunds, disputes, trial notices) still are. Unknown or
// unhandled event types yield nil, nil. An error means the event cannot be
// mapped (its object does not decode as the type its event type implies);
// retrying cannot help.
//
// Derive is pure: the same arguments give the same result.
func Derive(ev *stripe.Event, f Facts, id Identity, stale bool) ([]Outgoing, error) {
	if ev == nil || ev.Data == nil {
		return nil, errors.New("derive: no event data")
	}
	d := &deriver{ev: ev, f: f, id: id, stale: stale}
	var err error
	switch ev.Type {
	case "customer.created", "customer.updated":
		err = d.customer()
	case "checkout.session.completed":
		err = d.checkoutCompleted()
	case "customer.subscription.created":
		err = d.subscriptionCreated()
	case "customer.subscription.updated":
		err = d.subscriptionUpdated()
	case "customer.subscription.deleted":
		err = d.subscriptionDeleted()
	case "customer.subscription.trial_will_end":
		err = d.trialWillEnd()
	case "invoice.paid", "invoice.payment_succeeded":
		err = d.paymentSucceeded()
	case "invoice.payment_failed":
		err = d.paymentFailed()
	case "charge.refunded":
		err = d.refunded()
	case "charge.dispute.created", "charge.dispute.closed":
		err = d.dispute()
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("derive %s %s: %w", ev.Type, f.EventID, err)
	}
	for i := range d.outs {
		normaliseMessage(d.outs[i].Message)
		// An id the object carried may have been normalised with it; the
		// message id is the envelope's, the same way every time.
		if be, ok := d.outs[i].Message.(subjects.BillingEvent); ok {
			d.outs[i].MsgID = be.GetMeta().GetEventId()
		}
	}
	return d.outs, nil
}

// deriver collects the outgoing events of one Stripe event.
type deriver struct {
	ev    *stripe.Event
	f     Facts
	id    Identity
	stale bool
	outs  []Outgoing
}

// decode decodes data.object into v after checking that it is of the kind
// the event type implies.
func (d *deriver) decode(kind string, v any) error {
	if d.f.ObjectKind != kind {
		return fmt.Errorf("data.object is %q, want %q", d.f.ObjectKind, kind)
	}
	if o := reflect.ValueOf(d.f.object); o.IsValid() && o.Type() == reflect.TypeOf(v) {
		// Decoded once already by ExtractFacts: a shallow copy will do, as
		// deriving only reads it.
		reflect.ValueOf(v).Elem().Set(o.Elem())
		return nil
	}
	if err := json.Unmarshal(d.ev.Data.Raw, v); err != nil {
		return fmt.Errorf("decode %s: %w", kind, err)
	}
	return nil
}

// meta builds the envelope of the event on subject; suffix (may be empty)
// tells apart several events of one subject from one Stripe event.
func (d *deriver) meta(subject, suffix string) *billingv1.EventMeta {
	msgID := subject + ":" + d.f.EventID
	if suffix != "" {
		msgID += ":" + suffix
	}
	return &billingv1.EventMeta{
		EventId:             msgID,
		CanonicalCustomerId: d.id.CanonicalID,
		SourceEventIds:      []string{d.f.EventID},
		OccurredAt:          timestamppb.New(d.f.Created),
		ReceivedAt:          timestampOrNil(d.f.ReceivedAt),
		Livemode:            d.f.Livemode,
		StripeCustomerId:    firstNonEmpty(d.id.StripeCustomerID, d.f.StripeCustomerID),
		Email:               d.email(),
		UnverifiedEmail:     d.f.UnverifiedEmail,
	}
}

// timestampOrNil leaves an unknown time unset rather than the epoch.
func timestampOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// factMeta builds the envelope of a fact about one Stripe object (a
// payment, a refund, a dispute): its id comes from the object, not the
// event, because Stripe announces one fact in several events
// (invoice.paid and invoice.payment_succeeded) and one fact must be one
// message.
func (d *deriver) factMeta(subject, objectKey string) *billingv1.EventMeta {
	m := d.meta(subject, "")
	m.EventId = subject + ":" + objectKey
	return m
}

// email is the verified email: the profile's, else the event's own
// Customer object's. Never an unverified one.
func (d *deriver) email() string {
	return firstNonEmpty(cleanEmail(d.id.Email), d.f.Email)
}

func (d *deriver) add(subject string, m subjects.BillingEvent) {
	d.outs = append(d.outs, Outgoing{Subject: subject, MsgID: m.GetMeta().GetEventId(), Message: m})
}

// --- customers -------------------------------------------------------------

func (d *deriver) customer() error {
	if err := d.decode("customer", &stripe.Customer{}); err != nil {
		return err
	}
	if d.stale {
		return nil
	}
	d.upsert()
	return nil
}

func (d *deriver) checkoutCompleted() error {
	if err := d.decode("checkout.session", &stripe.CheckoutSession{}); err != nil {
		return err
	}
	if d.f.StripeCustomerID == "" && d.id.StripeCustomerID == "" {
		// A guest checkout: the email typed in it is no one's identity.
		return nil
	}
	d.upsert()
	return nil
}

func (d *deriver) upsert() {
	ids := slices.Clone(d.id.StripeCustomerIDs)
	if len(ids) == 0 && d.f.StripeCustomerID != "" {
		ids = []string{d.f.StripeCustomerID}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	d.add(subjects.BillingCustomerUpserted, &billingv1.CustomerUpserted{
		Meta:              d.meta(subjects.BillingCustomerUpserted, ""),
		Email:             d.email(),
		Name:              firstNonEmpty(d.id.Name, d.f.Name),
		StripeCustomerIds: ids,
	})
}

// --- subscriptions ---------------------------------------------------------

func (d *deriver) subscription() (*stripe.Subscription, error) {
	var s stripe.Subscription
	if err := d.decode("subscription", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func (d *deriver) subscriptionCreated() error {
	s, err := d.subscription()
	if err != nil || d.stale {
		return err
	}
	if s.Status == stripe.SubscriptionStatusTrialing || s.Status == stripe.SubscriptionStatusActive {
		d.started(s)
	}
	return nil
}

func (d *deriver) started(s *stripe.Subscription) {
	d.add(subjects.BillingSubscriptionStarted, &billingv1.SubscriptionStarted{
		Meta:         d.meta(subjects.BillingSubscriptionStarted, ""),
		Subscription: subscriptionMsg(s),
	})
}

// subscriptionUpdated derives what a subscription update changed: its
// status, a scheduled cancellation, its plan.
func (d *deriver) subscriptionUpdated() error {
	s, err := d.subscription()
	if err != nil || d.stale {
		return err
	}
	prev := d.ev.Data.PreviousAttributes
	prevStatus, reactivated := d.statusChanged(s, prev)
	d.cancellationScheduled(s, prev, prevStatus, reactivated)
	return d.planChanged(s, prev)
}

// statusChanged derives a status transition: started (out of
// incomplete), reactivated (back to active or trialing) or past due. It
// returns the status before the update and whether it reactivated.
func (d *deriver) statusChanged(s *stripe.Subscription, prev map[string]any) (prevStatus stripe.SubscriptionStatus, reactivated bool) {
	prevStatus = s.Status
	if v, ok := prev["status"].(string); ok {
		prevStatus = stripe.SubscriptionStatus(v)
	}
	if prevStatus == s.Status {
		return prevStatus, false
	}
	live := s.Status == stripe.SubscriptionStatusActive || s.Status == stripe.SubscriptionStatusTrialing
	switch {
	case live && prevStatus == stripe.SubscriptionStatusIncomplete:
		d.started(s)
	case live && (prevStatus == stripe.SubscriptionStatusPastDue || prevStatus == stripe.SubscriptionStatusUnpaid ||
		prevStatus == stripe.SubscriptionStatusPaused || prevStatus == stripe.SubscriptionStatusCanceled):
		d.reactivated(s, prevStatus)
		return prevStatus, true
	case s.Status == stripe.SubscriptionStatusPastDue:
		m := &billingv1.SubscriptionPastDue{
			Meta:         d.meta(subjects.BillingSubscriptionPastDue, ""),
			Subscription: subscriptionMsg(s),
		}
		if s.LatestInvoice != nil {
			m.LatestInvoiceId = s.LatestInvoice.ID
		}
		d.add(subjects.BillingSubscriptionPastDue, m)
	}
	return prevStatus, false
}

// cancellationScheduled derives a scheduled cancellation being set
// (canceled at period end, or at cancel_at) or withdrawn (reactivated,
// unless the status change said so already), for a subscription not
// canceled yet.
func (d *deriver) cancellationScheduled(s *stripe.Subscription, prev map[string]any, prevStatus stripe.SubscriptionStatus, reactivated bool) {
	if s.Status == stripe.SubscriptionStatusCanceled {
		return
	}
	was, is := scheduledCancel(prev, s)
	switch {
	case is && !was:
		cancelAt := s.CancelAt
		if cancelAt == 0 {
			cancelAt = s.CurrentPeriodEnd
		}
		d.canceled(s, true, cancelAt)
	case was && !is && !reactivated:
		d.reactivated(s, prevStatus)
	}
}

// planChanged derives an upgrade or a downgrade: a change of the plan's
// lines whose MRR, known before and after, went up or down.
func (d *deriver) planChanged(s *stripe.Subscription, prev map[string]any) error {
	if !hasAny(prev, "items", "plan", "quantity") {
		return nil
	}
	now := planLines(s.Items)
	before, err := previousLines(prev, now)
	if err != nil {
		return err
	}
	if linesEqual(before, now) {
		return nil
	}
	oldPlan, newPlan := planOf(before), planOf(now)
	if !linesKnown(before) || !linesKnown(now) || oldPlan.GetMrr() == newPlan.GetMrr() {
		return nil // not an upgrade or downgrade we can tell
	}
	if newPlan.GetMrr() > oldPlan.GetMrr() {
		d.add(subjects.BillingSubscriptionUpgraded, &billingv1.SubscriptionUpgraded{
			Meta:         d.meta(subjects.BillingSubscriptionUpgraded, ""),
			Subscription: subscriptionMsg(s),
			PreviousPlan: oldPlan,
		})
	} else {
		d.add(subjects.BillingSubscriptionDowngraded, &billingv1.SubscriptionDowngraded{
			Meta:         d.meta(subjects.BillingSubscriptionDowngraded, ""),
			Subscription: subscriptionMsg(s),
			PreviousPlan: oldPlan,
		})
	}
	return nil
}

func (d *deriver) reactivated(s *stripe.Subscription, prev stripe.SubscriptionStatus) {
	d.add(subjects.BillingSubscriptionReactivated, &billingv1.SubscriptionReactivated{
		Meta:           d.meta(subjects.BillingSubscriptionReactivated, ""),
		Subscription:   subscriptionMsg(s),
		PreviousStatus: statusOf(prev),
	})
}

func (d *deriver) canceled(s *stripe.Subscription, atPeriodEnd bool, at int64) {
	m := &billingv1.SubscriptionCanceled{
		Meta:         d.meta(subjects.BillingSubscriptionCanceled, ""),
		Subscription: subscriptionMsg(s),
		AtPeriodEnd:  atPeriodEnd,
		CancelAt:     ts(at),
	}
	if s.CancellationDetails != nil {
		m.CancellationReason = string(s.CancellationDetails.Reason)
	}
	d.add(subjects.BillingSubscriptionCanceled, m)
}

// scheduledCancel reports whether a cancellation was scheduled before the
// update and is now (cancel_at_period_end, or a cancel_at date). A key
// missing from previous_attributes did not change.
func scheduledCancel(prev map[string]any, s *stripe.Subscription) (was, is bool) {
	is = s.Status != stripe.SubscriptionStatusCanceled && (s.CancelAtPeriodEnd || s.CancelAt != 0)
	atEnd, at := s.CancelAtPeriodEnd, s.CancelAt != 0
	if v, ok := prev["cancel_at_period_end"]; ok {
		b, _ := v.(bool)
		atEnd = b
	}
	if v, ok := prev["cancel_at"]; ok {
		n, _ := v.(float64)
		at = n != 0
	}
	return atEnd || at, is
}

func (d *deriver) subscriptionDeleted() error {
	s, err := d.subscription()
	if err != nil || d.stale {
		return err
	}
	at := s.EndedAt
	if at == 0 {
		at = s.CanceledAt
	}
	d.canceled(s, false, at)
	return nil
}

func (d *deriver) trialWillEnd() error {
	s, err := d.subscription()
	if err != nil {
		return err
	}
	d.add(subjects.BillingSubscriptionTrialEnding, &billingv1.SubscriptionTrialEnding{
		Meta:         d.meta(subjects.BillingSubscriptionTrialEnding, ""),
		Subscription: subscriptionMsg(s),
	})
	return nil
}

// --- payments --------------------------------------------------------------

func (d *deriver) invoice() (*stripe.Invoice, error) {
	var in stripe.Invoice
	if err := d.decode("invoice", &in); err != nil {
		return nil, err
	}
	return &in, nil
}

func (d *deriver) paymentSucceeded() error {
	in, err := d.invoice()
	if err != nil {
		return err
	}
	d.add(subjects.BillingPaymentSucceeded, &billingv1.PaymentSucceeded{
		Meta:            d.factMeta(subjects.BillingPaymentSucceeded, in.ID),
		InvoiceId:       in.ID,
		SubscriptionId:  subscriptionID(in.Subscription),
		ChargeId:        chargeID(in.Charge),
		PaymentIntentId: paymentIntentID(in.PaymentIntent),
		Amount:          in.AmountPaid,
		Currency:        string(in.Currency),
		AttemptCount:    int32(in.AttemptCount),
		BillingReason:   string(in.BillingReason),
	})
	return nil
}

func (d *deriver) paymentFailed() error {
	in, err := d.invoice()
	if err != nil {
		return err
	}
	m := &billingv1.PaymentFailed{
		Meta:               d.factMeta(subjects.BillingPaymentFailed, in.ID+":"+strconv.FormatInt(in.AttemptCount, 10)),
		InvoiceId:          in.ID,
		SubscriptionId:     subscriptionID(in.Subscription),
		ChargeId:           chargeID(in.Charge),
		PaymentIntentId:    paymentIntentID(in.PaymentIntent),
		Amount:             in.AmountDue,
		Currency:           string(in.Currency),
		AttemptCount:       int32(in.AttemptCount),
		NextPaymentAttempt: ts(in.NextPaymentAttempt),
		Final:              in.NextPaymentAttempt == 0,
		BillingReason:      string(in.BillingReason),
	}
	if ch := in.Charge; ch != nil { // fields are empty unless expanded
		m.FailureCode, m.FailureMessage = ch.FailureCode, ch.FailureMessage
		if ch.Outcome != nil && ch.Outcome.Type == "issuer_declined" {
			m.DeclineCode = ch.Outcome.Reason // e.g. insufficient_funds
		}
	}
	d.add(subjects.BillingPaymentFailed, m)
	return nil
}

// --- refunds and disputes --------------------------------------------------

func (d *deriver) refunded() error {
	var ch stripe.Charge
	if err := d.decode("charge", &ch); err != nil {
		return err
	}
	prev := d.ev.Data.PreviousAttributes
	if ch.Refunds != nil && len(ch.Refunds.Data) > 0 {
		seen, err := previousRefunds(prev)
		if err != nil {
			return err
		}
		for _, r := range ch.Refunds.Data {
			if r == nil || seen[r.ID] {
				continue
			}
			d.add(subjects.BillingRefundIssued, &billingv1.RefundIssued{
				Meta:                d.factMeta(subjects.BillingRefundIssued, r.ID),
				RefundId:            r.ID,
				ChargeId:            ch.ID,
				PaymentIntentId:     firstNonEmpty(paymentIntentID(r.PaymentIntent), paymentIntentID(ch.PaymentIntent)),
				Amount:              r.Amount,
				Currency:            firstNonEmpty(string(r.Currency), string(ch.Currency)),
				Reason:              string(r.Reason),
				Status:              string(r.Status),
				ChargeFullyRefunded: ch.Refunded,
			})
		}
		return nil
	}
	amount := ch.AmountRefunded
	if v, ok := prev["amount_refunded"].(float64); ok {
		amount -= int64(v)
	}
	if amount <= 0 {
		return nil // nothing new was refunded
	}
	d.add(subjects.BillingRefundIssued, &billingv1.RefundIssued{
		// The cumulative refunded amount tells this refund from the charge's next one.
		Meta:                d.factMeta(subjects.BillingRefundIssued, ch.ID+":"+strconv.FormatInt(ch.AmountRefunded, 10)),
		ChargeId:            ch.ID,
		PaymentIntentId:     paymentIntentID(ch.PaymentIntent),
		Amount:              amount,
		Currency:            string(ch.Currency),
		ChargeFullyRefunded: ch.Refunded,
	})
	return nil
}

// previousRefunds returns the ids of the refunds the charge listed before
// the event (previous_attributes.refunds), if Stripe sent them.
func previousRefunds(prev map[string]any) (map[string]bool, error) {
	v, ok := prev["refunds"]
	if !ok || v == nil {
		return nil, nil
	}
	var list stripe.RefundList
	if err := remarshal(v, &list); err != nil {
		return nil, fmt.Errorf("previous refunds: %w", err)
	}
	seen := make(map[string]bool, len(list.Data))
	for _, r := range list.Data {
		if r != nil {
			seen[r.ID] = true
		}
	}
	return seen, nil
}

func (d *deriver) dispute() error {
	var dp stripe.Dispute
	if err := d.decode("dispute", &dp); err != nil {
		return err
	}
	msg := &billingv1.Dispute{
		DisputeId:       dp.ID,
		ChargeId:        chargeID(dp.Charge),
		PaymentIntentId: paymentIntentID(dp.PaymentIntent),
		Amount:          dp.Amount,
		Currency:        string(dp.Currency),
		Reason:          string(dp.Reason),
		Status:          string(dp.Status),
	}
	if d.ev.Type == "charge.dispute.created" {
		m := &billingv1.DisputeOpened{Meta: d.factMeta(subjects.BillingDisputeOpened, dp.ID), Dispute: msg}
		if dp.EvidenceDetails != nil {
			m.EvidenceDueBy = ts(dp.EvidenceDetails.DueBy)
		}
		d.add(subjects.BillingDisputeOpened, m)
		return nil
	}
	d.add(subjects.BillingDisputeClosed, &billingv1.DisputeClosed{
		Meta:    d.factMeta(subjects.BillingDisputeClosed, dp.ID),
		Dispute: msg,
		Outcome: disputeOutcome(dp.Status),
	})
	return nil
}

func disputeOutcome(s stripe.DisputeStatus) billingv1.DisputeOutcome {
	switch s {
	case stripe.DisputeStatusWon:
		return billingv1.DisputeOutcome_DISPUTE_OUTCOME_WON
	case stripe.DisputeStatusLost:
		return billingv1.DisputeOutcome_DISPUTE_OUTCOME_LOST
	case stripe.DisputeStatusWarningClosed:
		return billingv1.DisputeOutcome_DISPUTE_OUTCOME_WARNING_CLOSED
	}
	return billingv1.DisputeOutcome_DISPUTE_OUTCOME_UNSPECIFIED
}

// --- subscription state and plans ------------------------------------------

func subscriptionMsg(s *stripe.Subscription) *billingv1.Subscription {
	return &billingv1.Subscription{
		SubscriptionId:     s.ID,
		Status:             statusOf(s.Status),
		Plan:               planOf(planLines(s.Items)),
		CurrentPeriodStart: ts(s.CurrentPeriodStart),
		CurrentPeriodEnd:   ts(s.CurrentPeriodEnd),
		TrialEnd:           ts(s.TrialEnd),
		CancelAtPeriodEnd:  s.CancelAtPeriodEnd,
		CancelAt:           ts(s.CancelAt),
	}
}

var statuses = map[stripe.SubscriptionStatus]billingv1.SubscriptionStatus{
	stripe.SubscriptionStatusIncomplete:        billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_INCOMPLETE,
	stripe.SubscriptionStatusIncompleteExpired: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_INCOMPLETE_EXPIRED,
	stripe.SubscriptionStatusTrialing:          billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_TRIALING,
	stripe.SubscriptionStatusActive:            billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE,
	stripe.SubscriptionStatusPastDue:           billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAST_DUE,
	stripe.SubscriptionStatusCanceled:          billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_CANCELED,
	stripe.SubscriptionStatusUnpaid:            billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_UNPAID,
	stripe.SubscriptionStatusPaused:            billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED,
}

// statusOf maps Stripe's status; an unknown one is UNSPECIFIED.
func statusOf(s stripe.SubscriptionStatus) billingv1.SubscriptionStatus { return statuses[s] }

var intervals = map[string]billingv1.Interval{
	"day":   billingv1.Interval_INTERVAL_DAY,
	"week":  billingv1.Interval_INTERVAL_WEEK,
	"month": billingv1.Interval_INTERVAL_MONTH,
	"year":  billingv1.Interval_INTERVAL_YEAR,
}

// line is one subscription item as far as its plan and value go.
type line struct {
	priceID, productID, productName string
	nickname                        string // the price's (or legacy plan's)
	currency                        string
	interval                        string // day, week, month, year
	intervalCount                   int64
	quantity                        int64
	unit                            *big.Rat // per unit, minor units; nil = not stated (tiered)
	divideBy                        int64    // transform_quantity; 0 = none
	roundUp                         bool
}

func planLines(items *stripe.SubscriptionItemList) []line {
	if items == nil {
		return nil
	}
	var ls []line
	for _, it := range items.Data {
		if it == nil || it.Deleted {
			continue
		}
		ls = append(ls, lineOf(it))
	}
	return ls
}

func lineOf(it *stripe.SubscriptionItem) line {
	l := line{quantity: it.Quantity}
	switch {
	case it.Price != nil:
		p := it.Price
		l.priceID, l.currency, l.nickname = p.ID, string(p.Currency), p.Nickname
		if p.Product != nil {
			l.productID, l.productName = p.Product.ID, p.Product.Name
		}
		if p.Recurring != nil {
			l.interval, l.intervalCount = string(p.Recurring.Interval), p.Recurring.IntervalCount
		}
		if p.BillingScheme != stripe.PriceBillingSchemeTiered {
			l.unit = unitAmount(p.UnitAmount, p.UnitAmountDecimal)
		}
		if t := p.TransformQuantity; t != nil {
			l.divideBy, l.roundUp = t.DivideBy, t.Round == stripe.PriceTransformQuantityRoundUp
		}
	case it.Plan != nil:
		l.setPlan(it.Plan)
	}
	return l
}

// setPlan takes the price fields from a legacy plan object.
func (l *line) setPlan(p *stripe.Plan) {
	l.priceID, l.currency, l.nickname = p.ID, string(p.Currency), p.Nickname
	l.productID, l.productName = "", ""
	if p.Product != nil {
		l.productID, l.productName = p.Product.ID, p.Product.Name
	}
	l.interval, l.intervalCount = string(p.Interval), p.IntervalCount
	l.unit = nil
	if p.BillingScheme != stripe.PlanBillingSchemeTiered {
		l.unit = unitAmount(p.Amount, p.AmountDecimal)
	}
	l.divideBy, l.roundUp = 0, false
	if t := p.TransformUsage; t != nil {
		l.divideBy, l.roundUp = t.DivideBy, t.Round == stripe.PlanTransformUsageRoundUp
	}
}

// unitAmount prefers the decimal amount when it says more than the integer
// one (sub-cent prices).
func unitAmount(n int64, dec float64) *big.Rat {
	if dec != 0 && dec != float64(n) {
		if r, ok := new(big.Rat).SetString(strconv.FormatFloat(dec, 'f', -1, 64)); ok {
			return r
		}
	}
	return new(big.Rat).SetInt64(n)
}

// amount is the line's amount per interval (nil if unknown).
func (l line) amount() *big.Rat {
	if l.unit == nil {
		return nil
	}
	q := l.quantity
	if l.divideBy > 0 {
		whole, rem := q/l.divideBy, q%l.divideBy
		if l.roundUp && rem != 0 {
			whole++
		}
		q = whole
	}
	return new(big.Rat).Mul(l.unit, new(big.Rat).SetInt64(q))
}

// monthly is the line's amount scaled to one month (nil if unknown).
func (l line) monthly() *big.Rat {
	a := l.amount()
	if a == nil {
		return nil
	}
	n := l.intervalCount
	if n <= 0 {
		n = 1
	}
	var f *big.Rat
	switch l.interval {
	case "month":
		f = big.NewRat(1, n)
	case "year":
		f = big.NewRat(1, 12*n)
	case "week":
		f = big.NewRat(52, 12*n)
	case "day":
		f = big.NewRat(365, 12*n)
	default:
		return nil
	}
	return a.Mul(a, f)
}

func linesKnown(ls []line) bool {
	for _, l := range ls {
		if l.monthly() == nil {
			return false
		}
	}
	return len(ls) > 0
}

func linesEqual(a, b []line) bool {
	return slices.EqualFunc(a, b, func(x, y line) bool {
		ax, ay := x.amount(), y.amount()
		sameAmount := (ax == nil) == (ay == nil) && (ax == nil || ax.Cmp(ay) == 0)
		return x.priceID == y.priceID && x.quantity == y.quantity && x.interval == y.interval &&
			x.intervalCount == y.intervalCount && sameAmount
	})
}

// planOf summarises the lines: the first one names the plan; amounts are
// totals (unknown amounts count 0). nil if there are no lines.
func planOf(ls []line) *billingv1.Plan {
	if len(ls) == 0 {
		return nil
	}
	first := ls[0]
	total, mrr := new(big.Rat), new(big.Rat)
	for _, l := range ls {
		if a := l.amount(); a != nil {
			total.Add(total, a)
		}
		if m := l.monthly(); m != nil {
			mrr.Add(mrr, m)
		}
	}
	return &billingv1.Plan{
		PriceId:           first.priceID,
		ProductId:         first.productID,
		ProductName:       first.productName,
		PriceNickname:     first.nickname,
		Quantity:          first.quantity,
		AmountPerInterval: roundHalfUp(total),
		Currency:          first.currency,
		Interval:          intervals[first.interval],
		IntervalCount:     int32(first.intervalCount),
		Mrr:               roundHalfUp(mrr),
	}
}

// roundHalfUp rounds to the nearest integer, halves upwards.
func roundHalfUp(r *big.Rat) int64 {
	num := new(big.Int).Mul(r.Num(), big.NewInt(2))
	num.Add(num, r.Denom())
	den := new(big.Int).Mul(r.Denom(), big.NewInt(2))
	return new(big.Int).Div(num, den).Int64() // Euclidean: floor for den > 0
}

// previousLines rebuilds the items before an update from
// previous_attributes: "items" replaces them all; otherwise "plan" and
// "quantity" (legacy single-item fields) change the one current item.
func previousLines(prev map[string]any, now []line) ([]line, error) {
	if v, ok := prev["items"]; ok && v != nil {
		var items stripe.SubscriptionItemList
		if err := remarshal(v, &items); err != nil {
			return nil, fmt.Errorf("previous items: %w", err)
		}
		return planLines(&items), nil
	}
	if len(now) != 1 {
		return nil, nil // cannot tell which item changed
	}
	l := now[0]
	if v, ok := prev["plan"]; ok && v != nil {
		var p stripe.Plan
		if err := remarshal(v, &p); err != nil {
			return nil, fmt.Errorf("previous plan: %w", err)
		}
		l.setPlan(&p)
	}
	if q, ok := prev["quantity"].(float64); ok {
		l.quantity = int64(q)
	}
	return []line{l}, nil
}

// --- helpers ---------------------------------------------------------------

func remarshal(v any, into any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

func hasAny(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// ts converts Stripe's Unix seconds; 0 (null) is unset.
func ts(sec int64) *timestamppb.Timestamp {
	if sec == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(sec, 0))
}

func subscriptionID(s *stripe.Subscription) string {
	if s == nil {
		return ""
	}
	return s.ID
}
