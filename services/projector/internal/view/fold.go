package view

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/client"
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

// View is the status API's document (client.View).
type View = client.View

// SubscriptionView is the status API's document (client.SubscriptionView).
type SubscriptionView = client.SubscriptionView

// Payment is the status API's document (client.Payment).
type Payment = client.Payment

// CRMStatus is the status API's document (client.CRMStatus).
type CRMStatus = client.CRMStatus

// Ticket is the status API's document (client.Ticket).
type Ticket = client.Ticket

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
	es := distinctByTime(entries)
	f := newFolder(customerID, len(es))
	for _, e := range es {
		f.add(e)
	}
	return f.view()
}

// distinctByTime is entries without repeated event ids, oldest first (ties
// by event id), whatever order they came in.
func distinctByTime(entries []Entry) []*Entry {
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
	return es
}

// crmExpected is a billing event the CRM syncs: its version and subject.
type crmExpected struct {
	v    version
	kind string
}

// folder is Fold's state between entries: the newest version of each
// object seen so far, and the view's fields that need no more than that.
type folder struct {
	v                          View
	stripeIDs, unverified      map[string]bool
	merged                     map[string]bool
	profile, anyEmail, contact version
	lastPay                    version
	subs                       map[string]*subState
	disputes                   map[string]version
	disputeOpen                map[string]bool
	crmExpected                map[string]crmExpected  // billing event id → its version, for events the CRM syncs
	crmOut                     map[string]*crmOutcome  // billing event id → newest outcome
	tickets                    map[string]*ticketState // source event id|rule → newest outcome
}

func newFolder(customerID string, events int) *folder {
	return &folder{v: View{CustomerID: customerID, Events: events},
		stripeIDs: map[string]bool{}, unverified: map[string]bool{}, merged: map[string]bool{},
		subs: map[string]*subState{}, disputes: map[string]version{}, disputeOpen: map[string]bool{},
		crmExpected: map[string]crmExpected{}, crmOut: map[string]*crmOutcome{}, tickets: map[string]*ticketState{}}
}

// add folds one entry in (entries come oldest first).
func (f *folder) add(e *Entry) {
	if e.CustomerID != f.v.CustomerID {
		f.merged[e.CustomerID] = true
	}
	f.v.LastEventAt = later(f.v.LastEventAt, e.OccurredAt)
	m, err := e.decoded()
	if err != nil {
		return
	}
	if be, ok := m.(subjects.BillingEvent); ok {
		f.billingMeta(e, be.GetMeta())
	}
	f.billing(e, m)
	f.outcome(e, m)
}

// billingMeta folds what every billing event carries: livemode, the Stripe
// customer, emails (and whether the CRM should sync it).
func (f *folder) billingMeta(e *Entry, meta *billingv1.EventMeta) {
	f.v.Livemode = f.v.Livemode || meta.GetLivemode()
	if id := meta.GetStripeCustomerId(); id != "" {
		f.stripeIDs[id] = true
	}
	if u := meta.GetUnverifiedEmail(); u != "" {
		f.unverified[u] = true
	}
	if email := meta.GetEmail(); email != "" {
		ver := billingVersion(e, meta, 0)
		f.crmExpected[e.EventID] = crmExpected{v: ver, kind: e.Subject}
		if ver.newer(f.anyEmail) {
			f.anyEmail = ver
			if f.profile.id == "" {
				f.v.Email = email
			}
		}
	}
}

// billing folds a billing event's own facts: profile, subscription,
// payment, dispute.
func (f *folder) billing(e *Entry, m proto.Message) {
	switch ev := m.(type) {
	case *billingv1.CustomerUpserted:
		for _, id := range ev.GetStripeCustomerIds() {
			f.stripeIDs[id] = true
		}
		for _, id := range ev.GetMergedCanonicalIds() {
			f.merged[id] = true
		}
		if ver := billingVersion(e, ev.GetMeta(), 0); ver.newer(f.profile) {
			f.profile = ver
			if ev.GetEmail() != "" {
				f.v.Email = ev.GetEmail()
			}
			if ev.GetName() != "" {
				f.v.Name = ev.GetName()
			}
		}
	case interface {
		subjects.BillingEvent
		GetSubscription() *billingv1.Subscription
	}:
		sub := ev.GetSubscription()
		if sub.GetSubscriptionId() == "" {
			return
		}
		ver := billingVersion(e, ev.GetMeta(), 0)
		if cur := f.subs[sub.GetSubscriptionId()]; cur == nil || ver.newer(cur.v) {
			f.subs[sub.GetSubscriptionId()] = &subState{v: ver, sub: sub}
		}
	case *billingv1.PaymentSucceeded:
		if ver := billingVersion(e, ev.GetMeta(), 1); ver.newer(f.lastPay) {
			f.lastPay = ver
			f.v.LastPayment = &Payment{Status: "succeeded", Amount: ev.GetAmount(), Currency: ev.GetCurrency(), InvoiceID: ev.GetInvoiceId(),
				Attempt: ev.GetAttemptCount(), At: e.OccurredAt, EventID: e.EventID}
		}
	case *billingv1.PaymentFailed:
		if ver := billingVersion(e, ev.GetMeta(), 0); ver.newer(f.lastPay) {
			f.lastPay = ver
			p := &Payment{Status: "failed", Amount: ev.GetAmount(), Currency: ev.GetCurrency(), InvoiceID: ev.GetInvoiceId(),
				Attempt: ev.GetAttemptCount(), At: e.OccurredAt, Final: ev.GetFinal(), FailureCode: cmp.Or(ev.GetDeclineCode(), ev.GetFailureCode()), EventID: e.EventID}
			if ev.GetNextPaymentAttempt() != nil && !ev.GetFinal() {
				p.NextAttemptAt = ptime(ev.GetNextPaymentAttempt().AsTime())
			}
			f.v.LastPayment = p
		}
	case *billingv1.DisputeOpened:
		id := ev.GetDispute().GetDisputeId()
		if ver := billingVersion(e, ev.GetMeta(), 0); ver.newer(f.disputes[id]) {
			f.disputes[id], f.disputeOpen[id] = ver, true
		}
	case *billingv1.DisputeClosed:
		id := ev.GetDispute().GetDisputeId()
		if ver := billingVersion(e, ev.GetMeta(), 1); ver.newer(f.disputes[id]) {
			f.disputes[id], f.disputeOpen[id] = ver, false
		}
	}
}

// outcome folds a CRM or support automation's outcome.
func (f *folder) outcome(e *Entry, m proto.Message) {
	at := func(rank int) version { return version{at: e.OccurredAt, current: true, rank: rank, id: e.EventID} }
	switch ev := m.(type) {
	case *crmv1.ContactSynced:
		setCRM(f.crmOut, ev.GetSourceEventId(), &crmOutcome{v: at(2), status: "synced", contact: ev.GetContactId()})
		if ev.GetContactId() != "" {
			if ver := at(0); ver.newer(f.contact) {
				f.contact, f.v.CRMContactID = ver, ev.GetContactId()
			}
		}
	case *crmv1.ContactPendingRetry:
		setCRM(f.crmOut, ev.GetSourceEventId(), &crmOutcome{v: at(0), status: "pending_retry",
			next: ptime(ev.GetNextAttemptAt().AsTime()), class: className(ev.GetErrorClass()), reason: ev.GetReason()})
	case *crmv1.ContactFailed:
		setCRM(f.crmOut, ev.GetSourceEventId(), &crmOutcome{v: at(1), status: "failed",
			class: className(ev.GetErrorClass()), reason: ev.GetReason()})
	case *supportv1.TicketOpened:
		setTicket(f.tickets, ev.GetSourceEventId()+"|"+ev.GetRule(), &ticketState{v: at(1),
			t: Ticket{TicketID: ev.GetTicketId(), Rule: ev.GetRule(), Priority: priorityName(ev.GetPriority()), Status: "open", At: e.OccurredAt, SourceEventID: ev.GetSourceEventId()}})
	case *supportv1.TicketFailed:
		setTicket(f.tickets, ev.GetSourceEventId()+"|"+ev.GetRule(), &ticketState{v: at(0),
			t: Ticket{Rule: ev.GetRule(), Priority: priorityName(ev.GetPriority()), Status: "failed", At: e.OccurredAt, SourceEventID: ev.GetSourceEventId(),
				Reason: ev.GetReason(), Critical: ev.GetCritical()}})
	}
}

// view finishes the view from the folded state, as of the events.
func (f *folder) view() View {
	v := &f.v
	v.StripeCustomerIDs = sortedKeys(f.stripeIDs)
	delete(f.unverified, v.Email) // the verified one says it already
	v.UnverifiedEmails = sortedKeys(f.unverified)
	delete(f.merged, v.CustomerID)
	v.MergedIDs = sortedKeys(f.merged)
	f.subscriptions()
	f.crmStatus()
	f.ticketsAndDisputes()
	Evaluate(v, time.Time{})
	return *v
}

// subscriptions lists them newest first; the primary one (plan, status,
// currency) is the newest that is not over, else the newest.
func (f *folder) subscriptions() {
	v := &f.v
	v.Subscriptions = []SubscriptionView{}
	for _, s := range f.subs {
		v.Subscriptions = append(v.Subscriptions, subscriptionView(s))
	}
	slices.SortFunc(v.Subscriptions, func(a, b SubscriptionView) int {
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(b.ID, a.ID))
	})
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
}

// crmStatus: the newest billing event the CRM should reflect decides the
// status; failures no later sync has covered stay listed.
func (f *folder) crmStatus() {
	crm := CRMStatus{Status: "not_applicable", FailedEventIDs: []string{}}
	var newest version
	var newestID string
	for id, x := range f.crmExpected {
		if x.v.newer(newest) {
			newest, newestID = x.v, id
		}
	}
	var lastSynced version
	for id, o := range f.crmOut {
		if o.status == "synced" {
			if x, ok := f.crmExpected[id]; ok && x.v.newer(lastSynced) {
				lastSynced = x.v
			}
			if crm.LastSyncedAt == nil || o.v.at.After(*crm.LastSyncedAt) {
				crm.LastSyncedAt = ptime(o.v.at)
			}
		}
	}
	for id, o := range f.crmOut {
		if o.status == "failed" {
			if x, ok := f.crmExpected[id]; !ok || !lastSynced.newer(x.v) {
				crm.FailedEventIDs = append(crm.FailedEventIDs, id)
			}
		}
	}
	slices.Sort(crm.FailedEventIDs)
	if newestID != "" {
		crm.SourceEventID, crm.SourceSubject = newestID, f.crmExpected[newestID].kind
		crm.Status = "pending"
		if o := f.crmOut[newestID]; o != nil {
			crm.Status, crm.NextAttemptAt, crm.ErrorClass, crm.Reason = o.status, o.next, o.class, o.reason
		}
	}
	f.v.CRM = crm
}

// ticketsAndDisputes lists open and failed tickets, oldest first, and the
// disputes still open.
func (f *folder) ticketsAndDisputes() {
	v := &f.v
	v.OpenTickets, v.FailedTickets = []Ticket{}, []Ticket{}
	for _, t := range f.tickets {
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
	for id, open := range f.disputeOpen {
		if open {
			v.OpenDisputes = append(v.OpenDisputes, id)
		}
	}
	slices.Sort(v.OpenDisputes)
}

// Evaluate sets State and States as they stand at now. Fold evaluates as of
// the events (a zero now: every retry still ahead), which is what the
// projection stores; the status API and the console evaluate again when they
// read, so a retry date that has passed reads as overdue.
func Evaluate(v *View, now time.Time) {
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
