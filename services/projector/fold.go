package projector

import (
	"cmp"
	"slices"
	"strings"
	"time"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// User-facing states, most urgent first in View.States (see states for the
// rules). A state that names a date is evaluated when it is read: a retry
// date that has passed without an outcome reads as overdue, not scheduled.
const (
	StatePaymentFailed   = "payment failed — retry on "      // + date, while the retry is ahead
	StatePaymentRetryDue = "payment failed — retry was due " // + date, once it has passed with no outcome yet
	StatePaymentFinal    = "payment failed — no retries left"
	StateDisputeOpen     = "dispute open"
	StateCRMFailed       = "CRM update failed"
	StateTicketFailed    = "support ticket could not be opened"
	StateCanceled        = "subscription canceled"
	StateTicketOpened    = "support ticket opened"
	StateProvisioning    = "account provisioning in progress"
	StateCRMPending      = "CRM update pending"
	StatePaymentReceived = "payment received"
	StateNoActivity      = "customer created"
)

// State kinds: a state without its date, what "customers by state" counts.
// Every other state is its own kind.
const (
	KindRetryScheduled = "payment failed — retry scheduled"
	KindRetryOverdue   = "payment failed — retry overdue"
)

// StateKind is the kind of a state: the state without the date it names.
func StateKind(state string) string {
	switch {
	case strings.HasPrefix(state, StatePaymentFailed):
		return KindRetryScheduled
	case strings.HasPrefix(state, StatePaymentRetryDue):
		return KindRetryOverdue
	}
	return state
}

// View is one canonical customer as the status API returns it. It is a pure
// function of the customer's set of entries (Fold). UnverifiedEmails were
// typed by whoever paid (a card form, a receipt email, a guest checkout):
// shown labelled, never the customer's email.
type View struct {
	CustomerID        string             `json:"id"`
	Email             string             `json:"email,omitempty"`
	UnverifiedEmails  []string           `json:"unverified_emails"`
	Name              string             `json:"name,omitempty"`
	StripeCustomerIDs []string           `json:"stripe_customer_ids"`
	CRMContactID      string             `json:"crm_contact_id,omitempty"`
	MergedIDs         []string           `json:"merged_ids"`
	Livemode          bool               `json:"livemode"`
	State             string             `json:"state"`
	States            []string           `json:"states"`
	Plan              string             `json:"plan,omitempty"`
	Status            string             `json:"subscription_status,omitempty"`
	MRR               int64              `json:"mrr"`
	Currency          string             `json:"currency,omitempty"`
	Subscriptions     []SubscriptionView `json:"subscriptions"`
	LastPayment       *Payment           `json:"last_payment,omitempty"`
	CRM               CRMStatus          `json:"crm"`
	OpenTickets       []Ticket           `json:"open_tickets"`
	FailedTickets     []Ticket           `json:"failed_tickets"`
	OpenDisputes      []string           `json:"open_disputes"`
	LastEventAt       time.Time          `json:"last_event_at"`
	Events            int                `json:"events"`
}

// SubscriptionView is a subscription's newest known state.
type SubscriptionView struct {
	ID                string     `json:"id"`
	Status            string     `json:"status"`
	Plan              string     `json:"plan"`
	PriceID           string     `json:"price_id,omitempty"`
	Quantity          int64      `json:"quantity"`
	MRR               int64      `json:"mrr"`
	Currency          string     `json:"currency,omitempty"`
	Interval          string     `json:"interval,omitempty"`
	CurrentPeriodEnd  *time.Time `json:"current_period_end,omitempty"`
	TrialEnd          *time.Time `json:"trial_end,omitempty"`
	CancelAtPeriodEnd bool       `json:"cancel_at_period_end"`
	CancelAt          *time.Time `json:"cancel_at,omitempty"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

// Payment is the newest payment attempt.
type Payment struct {
	Status        string     `json:"status"` // succeeded | failed
	Amount        int64      `json:"amount"`
	Currency      string     `json:"currency"`
	InvoiceID     string     `json:"invoice_id,omitempty"`
	Attempt       int32      `json:"attempt"`
	At            time.Time  `json:"at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	Final         bool       `json:"final,omitempty"`
	FailureCode   string     `json:"failure_code,omitempty"`
	EventID       string     `json:"event_id"`
}

// CRMStatus is where the CRM contact stands.
type CRMStatus struct {
	// Status: synced, pending (no outcome yet), pending_retry, failed, or
	// not_applicable (no billing event with an email yet).
	Status        string     `json:"status"`
	SourceEventID string     `json:"source_event_id,omitempty"` // the newest billing event the CRM should reflect
	SourceSubject string     `json:"source_subject,omitempty"`  // and its subject
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	ErrorClass    string     `json:"error_class,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	LastSyncedAt  *time.Time `json:"last_synced_at,omitempty"`
	// FailedEventIDs are billing events whose sync gave up and that no
	// later sync has covered (a replay from the dead letters fixes them).
	FailedEventIDs []string `json:"failed_event_ids"`
}

// Ticket is a support automation outcome.
type Ticket struct {
	TicketID      string    `json:"ticket_id,omitempty"`
	Rule          string    `json:"rule"`
	Priority      string    `json:"priority"`
	Status        string    `json:"status"` // open | failed
	At            time.Time `json:"at"`
	SourceEventID string    `json:"source_event_id"`
	Reason        string    `json:"reason,omitempty"`
	Critical      bool      `json:"critical,omitempty"`
}

// version orders the versions of one object: newer occurred_at wins; at
// the same second a current event beats a superseded one (identity marks
// the loser of a tie it resolved against Stripe), then rank (kind-specific,
// e.g. a success beats a failure), then the event id, so the choice never
// depends on arrival order.
type version struct {
	at      time.Time
	current bool
	rank    int
	id      string
}

func (v version) newer(o version) bool {
	if c := v.at.Compare(o.at); c != 0 {
		return c > 0
	}
	if v.current != o.current {
		return v.current
	}
	if v.rank != o.rank {
		return v.rank > o.rank
	}
	return v.id > o.id
}

func billingVersion(e *Entry, meta *billingv1.EventMeta, rank int) version {
	return version{at: e.OccurredAt, current: !meta.GetSuperseded(), rank: rank, id: e.EventID}
}

type subState struct {
	v   version
	sub *billingv1.Subscription
}

type crmOutcome struct {
	v       version
	status  string
	next    *time.Time
	class   string
	reason  string
	contact string
}

type ticketState struct {
	v version
	t Ticket
}

// Fold computes the view of customerID from its entries and those of the
// customers merged into it. The result depends only on the set of entries:
// not on their order, nor on duplicates.
func Fold(customerID string, entries []Entry) View {
	es := make([]*Entry, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for i := range entries {
		if !seen[entries[i].EventID] {
			seen[entries[i].EventID] = true
			es = append(es, &entries[i])
		}
	}
	slices.SortFunc(es, func(a, b *Entry) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), cmp.Compare(a.EventID, b.EventID))
	})

	v := View{CustomerID: customerID, Events: len(es)}
	stripeIDs := map[string]bool{}
	unverified := map[string]bool{}
	merged := map[string]bool{}
	var profile, anyEmail, contact version
	subs := map[string]*subState{}
	var lastPay version
	disputes := map[string]version{}
	disputeOpen := map[string]bool{}
	type expected struct {
		v    version
		kind string
	}
	crmExpected := map[string]expected{} // billing event id → its version, for events the CRM syncs
	crmOut := map[string]*crmOutcome{}   // billing event id → newest outcome
	tickets := map[string]*ticketState{}

	for _, e := range es {
		if e.CustomerID != customerID {
			merged[e.CustomerID] = true
		}
		v.LastEventAt = later(v.LastEventAt, e.OccurredAt)
		m, err := e.decoded()
		if err != nil {
			continue
		}
		if be, ok := m.(subjects.BillingEvent); ok {
			meta := be.GetMeta()
			v.Livemode = v.Livemode || meta.GetLivemode()
			if id := meta.GetStripeCustomerId(); id != "" {
				stripeIDs[id] = true
			}
			if u := meta.GetUnverifiedEmail(); u != "" {
				unverified[u] = true
			}
			if email := meta.GetEmail(); email != "" {
				crmExpected[e.EventID] = expected{v: billingVersion(e, meta, 0), kind: e.Subject}
				if ver := billingVersion(e, meta, 0); ver.newer(anyEmail) {
					anyEmail = ver
					if profile.id == "" {
						v.Email = email
					}
				}
			}
		}
		switch ev := m.(type) {
		case *billingv1.CustomerUpserted:
			for _, id := range ev.GetStripeCustomerIds() {
				stripeIDs[id] = true
			}
			for _, id := range ev.GetMergedCanonicalIds() {
				merged[id] = true
			}
			if ver := billingVersion(e, ev.GetMeta(), 0); ver.newer(profile) {
				profile = ver
				if ev.GetEmail() != "" {
					v.Email = ev.GetEmail()
				}
				if ev.GetName() != "" {
					v.Name = ev.GetName()
				}
			}
		case interface {
			subjects.BillingEvent
			GetSubscription() *billingv1.Subscription
		}:
			sub := ev.GetSubscription()
			if sub.GetSubscriptionId() == "" {
				break
			}
			ver := billingVersion(e, ev.GetMeta(), 0)
			if cur := subs[sub.GetSubscriptionId()]; cur == nil || ver.newer(cur.v) {
				subs[sub.GetSubscriptionId()] = &subState{v: ver, sub: sub}
			}
		case *billingv1.PaymentSucceeded:
			if ver := billingVersion(e, ev.GetMeta(), 1); ver.newer(lastPay) {
				lastPay = ver
				v.LastPayment = &Payment{Status: "succeeded", Amount: ev.GetAmount(), Currency: ev.GetCurrency(), InvoiceID: ev.GetInvoiceId(),
					Attempt: ev.GetAttemptCount(), At: e.OccurredAt, EventID: e.EventID}
			}
		case *billingv1.PaymentFailed:
			if ver := billingVersion(e, ev.GetMeta(), 0); ver.newer(lastPay) {
				lastPay = ver
				p := &Payment{Status: "failed", Amount: ev.GetAmount(), Currency: ev.GetCurrency(), InvoiceID: ev.GetInvoiceId(),
					Attempt: ev.GetAttemptCount(), At: e.OccurredAt, Final: ev.GetFinal(), FailureCode: cmp.Or(ev.GetDeclineCode(), ev.GetFailureCode()), EventID: e.EventID}
				if ev.GetNextPaymentAttempt() != nil && !ev.GetFinal() {
					p.NextAttemptAt = ptime(ev.GetNextPaymentAttempt().AsTime())
				}
				v.LastPayment = p
			}
		case *billingv1.DisputeOpened:
			id := ev.GetDispute().GetDisputeId()
			if ver := billingVersion(e, ev.GetMeta(), 0); ver.newer(disputes[id]) {
				disputes[id], disputeOpen[id] = ver, true
			}
		case *billingv1.DisputeClosed:
			id := ev.GetDispute().GetDisputeId()
			if ver := billingVersion(e, ev.GetMeta(), 1); ver.newer(disputes[id]) {
				disputes[id], disputeOpen[id] = ver, false
			}
		case *crmv1.ContactSynced:
			setCRM(crmOut, ev.GetSourceEventId(), &crmOutcome{v: version{at: e.OccurredAt, current: true, rank: 2, id: e.EventID}, status: "synced", contact: ev.GetContactId()})
			if ev.GetContactId() != "" {
				if ver := (version{at: e.OccurredAt, current: true, id: e.EventID}); ver.newer(contact) {
					contact, v.CRMContactID = ver, ev.GetContactId()
				}
			}
		case *crmv1.ContactPendingRetry:
			setCRM(crmOut, ev.GetSourceEventId(), &crmOutcome{v: version{at: e.OccurredAt, current: true, rank: 0, id: e.EventID}, status: "pending_retry",
				next: ptime(ev.GetNextAttemptAt().AsTime()), class: className(ev.GetErrorClass()), reason: ev.GetReason()})
		case *crmv1.ContactFailed:
			setCRM(crmOut, ev.GetSourceEventId(), &crmOutcome{v: version{at: e.OccurredAt, current: true, rank: 1, id: e.EventID}, status: "failed",
				class: className(ev.GetErrorClass()), reason: ev.GetReason()})
		case *supportv1.TicketOpened:
			setTicket(tickets, ev.GetSourceEventId()+"|"+ev.GetRule(), &ticketState{v: version{at: e.OccurredAt, current: true, rank: 1, id: e.EventID},
				t: Ticket{TicketID: ev.GetTicketId(), Rule: ev.GetRule(), Priority: priorityName(ev.GetPriority()), Status: "open", At: e.OccurredAt, SourceEventID: ev.GetSourceEventId()}})
		case *supportv1.TicketFailed:
			setTicket(tickets, ev.GetSourceEventId()+"|"+ev.GetRule(), &ticketState{v: version{at: e.OccurredAt, current: true, rank: 0, id: e.EventID},
				t: Ticket{Rule: ev.GetRule(), Priority: priorityName(ev.GetPriority()), Status: "failed", At: e.OccurredAt, SourceEventID: ev.GetSourceEventId(),
					Reason: ev.GetReason(), Critical: ev.GetCritical()}})
		}
	}

	v.StripeCustomerIDs = sortedKeys(stripeIDs)
	delete(unverified, v.Email) // the verified one says it already
	v.UnverifiedEmails = sortedKeys(unverified)
	delete(merged, customerID)
	v.MergedIDs = sortedKeys(merged)

	// Subscriptions: newest first; the primary one is the newest that is
	// not over, else the newest.
	for _, s := range subs {
		v.Subscriptions = append(v.Subscriptions, subscriptionView(s))
	}
	slices.SortFunc(v.Subscriptions, func(a, b SubscriptionView) int {
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(b.ID, a.ID))
	})
	if v.Subscriptions == nil {
		v.Subscriptions = []SubscriptionView{}
	}
	var primary *SubscriptionView
	for i := range v.Subscriptions {
		if s := &v.Subscriptions[i]; !ended(s.Status) {
			primary = s
			break
		}
	}
	if primary == nil && len(v.Subscriptions) > 0 {
		primary = &v.Subscriptions[0]
	}
	if primary != nil {
		v.Plan, v.Status, v.Currency = primary.Plan, primary.Status, primary.Currency
	}
	for _, s := range v.Subscriptions {
		// MRR as Stripe counts it: paying subscriptions, not trials; one
		// currency per customer (Stripe allows no other).
		if (s.Status == "active" || s.Status == "past_due") && (v.Currency == "" || s.Currency == v.Currency) {
			v.MRR += s.MRR
		}
	}
	if v.Currency == "" && v.LastPayment != nil {
		v.Currency = v.LastPayment.Currency
	}

	// CRM: the newest billing event the CRM should reflect decides the
	// status; failures no later sync has covered stay listed.
	v.CRM = CRMStatus{Status: "not_applicable", FailedEventIDs: []string{}}
	var newest version
	var newestID string
	for id, x := range crmExpected {
		if x.v.newer(newest) {
			newest, newestID = x.v, id
		}
	}
	var lastSynced version
	for id, o := range crmOut {
		if o.status == "synced" {
			if at, ok := crmExpected[id]; ok && at.v.newer(lastSynced) {
				lastSynced = at.v
			}
			if v.CRM.LastSyncedAt == nil || o.v.at.After(*v.CRM.LastSyncedAt) {
				v.CRM.LastSyncedAt = ptime(o.v.at)
			}
		}
	}
	for id, o := range crmOut {
		if o.status == "failed" {
			if x, ok := crmExpected[id]; !ok || !lastSynced.newer(x.v) {
				v.CRM.FailedEventIDs = append(v.CRM.FailedEventIDs, id)
			}
		}
	}
	slices.Sort(v.CRM.FailedEventIDs)
	if newestID != "" {
		v.CRM.SourceEventID = newestID
		v.CRM.Status = "pending"
		if o := crmOut[newestID]; o != nil {
			v.CRM.Status, v.CRM.NextAttemptAt, v.CRM.ErrorClass, v.CRM.Reason = o.status, o.next, o.class, o.reason
		}
	}

	v.OpenTickets, v.FailedTickets = []Ticket{}, []Ticket{}
	for _, t := range tickets {
		if t.t.Status == "open" {
			v.OpenTickets = append(v.OpenTickets, t.t)
		} else {
			v.FailedTickets = append(v.FailedTickets, t.t)
		}
	}
	byTime := func(a, b Ticket) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.SourceEventID, b.SourceEventID), cmp.Compare(a.Rule, b.Rule))
	}
	slices.SortFunc(v.OpenTickets, byTime)
	slices.SortFunc(v.FailedTickets, byTime)
	v.OpenDisputes = []string{}
	for id, open := range disputeOpen {
		if open {
			v.OpenDisputes = append(v.OpenDisputes, id)
		}
	}
	slices.Sort(v.OpenDisputes)

	v.CRM.SourceSubject = crmExpected[newestID].kind
	v.Evaluate(time.Time{})
	return v
}

// Evaluate sets State and States as they stand at now. Fold evaluates as of
// the events (a zero now: every retry still ahead), which is what the
// projection stores; the status API and the console evaluate again when they
// read, so a retry date that has passed reads as overdue.
func (v *View) Evaluate(now time.Time) {
	v.States = states(v, now)
	v.State = v.States[0]
}

// states lists the user-facing states, most urgent first; never empty.
// The rules, in this order:
//  1. What needs a person: a failed payment (unless a cancellation after it
//     ended its retries), an open dispute, a CRM update or a support ticket
//     the hub gave up on.
//  2. A canceled subscription (the customer has no live one), above every
//     fact it supersedes: earlier payments and provisioning.
//  3. A failed payment from before the cancellation: no retries are left,
//     the subscription being gone.
//  4. Open support tickets.
//  5. Automations under way: account provisioning (never for a canceled
//     customer) or a pending CRM update.
//  6. A payment received.
//  7. Otherwise: customer created.
func states(v *View, now time.Time) []string {
	var out []string
	canceled := v.Status == "canceled"
	var canceledAt time.Time
	if canceled && len(v.Subscriptions) > 0 {
		canceledAt = v.Subscriptions[0].UpdatedAt // the primary: no live one is left
	}
	failed := v.LastPayment != nil && v.LastPayment.Status == "failed"
	failedBeforeCancel := failed && canceled && !v.LastPayment.At.After(canceledAt)
	if p := v.LastPayment; failed && !failedBeforeCancel {
		switch {
		case p.NextAttemptAt == nil:
			out = append(out, StatePaymentFinal)
		case now.IsZero() || p.NextAttemptAt.After(now):
			out = append(out, StatePaymentFailed+day(*p.NextAttemptAt))
		default:
			out = append(out, StatePaymentRetryDue+day(*p.NextAttemptAt))
		}
	}
	if len(v.OpenDisputes) > 0 {
		out = append(out, StateDisputeOpen)
	}
	if len(v.CRM.FailedEventIDs) > 0 || v.CRM.Status == "failed" {
		out = append(out, StateCRMFailed)
	}
	if len(v.FailedTickets) > 0 {
		out = append(out, StateTicketFailed)
	}
	if canceled {
		out = append(out, StateCanceled)
	}
	if failedBeforeCancel {
		out = append(out, StatePaymentFinal)
	}
	if len(v.OpenTickets) > 0 {
		out = append(out, StateTicketOpened)
	}
	crmPending := v.CRM.Status == "pending" || v.CRM.Status == "pending_retry"
	switch {
	case !canceled && (v.Status == "incomplete" || crmPending && v.CRM.SourceSubject == subjects.BillingSubscriptionStarted):
		// Paid or signing up, and the hub's automations have not all
		// reported back yet.
		out = append(out, StateProvisioning)
	case crmPending:
		out = append(out, StateCRMPending)
	}
	if p := v.LastPayment; p != nil && p.Status == "succeeded" {
		out = append(out, StatePaymentReceived)
	}
	if len(out) == 0 {
		out = append(out, StateNoActivity)
	}
	return out
}

func subscriptionView(s *subState) SubscriptionView {
	sub, p := s.sub, s.sub.GetPlan()
	sv := SubscriptionView{ID: sub.GetSubscriptionId(), Status: statusName(sub.GetStatus()), Plan: planName(p), PriceID: p.GetPriceId(),
		Quantity: p.GetQuantity(), MRR: p.GetMrr(), Currency: p.GetCurrency(), Interval: intervalName(p.GetInterval()),
		CancelAtPeriodEnd: sub.GetCancelAtPeriodEnd(), UpdatedAt: s.v.at}
	if t := sub.GetCurrentPeriodEnd(); t != nil {
		sv.CurrentPeriodEnd = ptime(t.AsTime())
	}
	if t := sub.GetTrialEnd(); t != nil {
		sv.TrialEnd = ptime(t.AsTime())
	}
	if t := sub.GetCancelAt(); t != nil {
		sv.CancelAt = ptime(t.AsTime())
	}
	return sv
}

func ended(status string) bool {
	return status == "canceled" || status == "incomplete_expired"
}

func setCRM(m map[string]*crmOutcome, source string, o *crmOutcome) {
	if cur := m[source]; cur == nil || o.v.newer(cur.v) {
		m[source] = o
	}
}

func setTicket(m map[string]*ticketState, key string, t *ticketState) {
	if cur := m[key]; cur == nil || t.v.newer(cur.v) {
		m[key] = t
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func ptime(t time.Time) *time.Time {
	t = t.UTC()
	return &t
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// normalizeEmail is how identity stores emails: trimmed, lower case.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
