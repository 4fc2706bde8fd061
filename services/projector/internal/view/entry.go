package view

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	moneyfmt "github.com/switchyard/switchyard/platform/money"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	commonv1 "github.com/switchyard/switchyard/proto/gen/switchyard/common/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// Entry is one message of a customer's history: a billing event or an
// automation outcome, as stored in the events table.
type Entry struct {
	EventID    string    // the message's own id (EventMeta.event_id, or event_id)
	CustomerID string    // canonical customer id as published (may since have been merged)
	Subject    string    // the NATS subject, which names the message type
	OccurredAt time.Time // Stripe's created (billing) or the outcome's time
	ReceivedAt time.Time // when the hub received the Stripe event (billing; zero if unknown)
	SourceIDs  []string  // Stripe event ids (billing), or the billing event id (crm, support)
	TraceID    string    // W3C trace id of the message, "" if it carried none
	Payload    []byte    // the protobuf message

	msg proto.Message
}

// Outcome is what every crm.> and support.> message has in common.
type Outcome interface {
	proto.Message
	GetEventId() string
	GetCanonicalCustomerId() string
	GetSourceEventId() string
	GetOccurredAt() *timestamppb.Timestamp
}

// NewEntry decodes a message from one of the projected streams. An error
// means the message cannot be projected (unknown subject, bad payload, no
// customer); it will never become projectable, so callers count and skip it.
func NewEntry(subject string, payload []byte, header nats.Header) (Entry, error) {
	m, err := subjects.Decode(subject, payload)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Subject: subject, Payload: payload, TraceID: TraceID(header), msg: m}
	switch ev := m.(type) {
	case subjects.BillingEvent:
		meta := ev.GetMeta()
		e.EventID, e.CustomerID = meta.GetEventId(), meta.GetCanonicalCustomerId()
		e.OccurredAt = meta.GetOccurredAt().AsTime()
		if r := meta.GetReceivedAt(); r != nil {
			e.ReceivedAt = r.AsTime().UTC().Truncate(time.Microsecond)
		}
		e.SourceIDs = append([]string(nil), meta.GetSourceEventIds()...)
	case Outcome:
		e.EventID, e.CustomerID = ev.GetEventId(), ev.GetCanonicalCustomerId()
		e.OccurredAt = ev.GetOccurredAt().AsTime()
		if s := ev.GetSourceEventId(); s != "" {
			e.SourceIDs = []string{s}
		}
	default:
		return Entry{}, fmt.Errorf("%s: not a customer event", subject)
	}
	if e.EventID == "" {
		return Entry{}, fmt.Errorf("%s: message without an event id", subject)
	}
	if e.CustomerID == "" {
		return Entry{}, fmt.Errorf("%s %s: message without a canonical customer id", subject, e.EventID)
	}
	// PostgreSQL keeps microseconds: fold what the database gives back, so
	// a rebuild and the live path (both folding what the events table
	// holds) see the same times.
	e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
	return e, nil
}

// receivedAt is ReceivedAt for the events table: NULL when unknown.
func (e *Entry) receivedAt() *time.Time {
	if e.ReceivedAt.IsZero() {
		return nil
	}
	return &e.ReceivedAt
}

// decoded returns the message, decoding Payload if the entry came from the
// database.
func (e *Entry) decoded() (proto.Message, error) {
	if e.msg == nil {
		m, err := subjects.Decode(e.Subject, e.Payload)
		if err != nil {
			return nil, err
		}
		e.msg = m
	}
	return e.msg, nil
}

// TraceID reads the trace id from a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex span id>-<flags>").
func TraceID(h nats.Header) string {
	tp := h.Get("traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || parts[1] == strings.Repeat("0", 32) {
		return ""
	}
	for _, c := range parts[1] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return parts[1]
}

// Kind is the part of the hub an entry comes from.
func (e *Entry) Kind() string {
	kind, _, _ := strings.Cut(e.Subject, ".")
	return kind
}

// Describe is the entry as a founder reads it: one line and a status
// ("ok", "pending", "failed" or "info").
func (e *Entry) Describe() (summary, status string) {
	m, err := e.decoded()
	if err != nil {
		return "unreadable " + e.Subject + " message", "failed"
	}
	switch ev := m.(type) {
	case *billingv1.CustomerUpserted:
		if len(ev.GetMergedCanonicalIds()) > 0 {
			return "Customer records merged: " + strings.Join(ev.GetMergedCanonicalIds(), ", "), "info"
		}
		return "Customer details updated", "info"
	case *billingv1.SubscriptionStarted:
		return "Subscription started: " + subLine(ev.GetSubscription()), "ok"
	case *billingv1.SubscriptionUpgraded:
		return "Plan upgraded from " + planName(ev.GetPreviousPlan()) + ": " + subLine(ev.GetSubscription()), "ok"
	case *billingv1.SubscriptionDowngraded:
		return "Plan downgraded from " + planName(ev.GetPreviousPlan()) + ": " + subLine(ev.GetSubscription()), "ok"
	case *billingv1.SubscriptionTrialEnding:
		return "Trial ends on " + day(ev.GetSubscription().GetTrialEnd().AsTime()), "info"
	case *billingv1.SubscriptionCanceled:
		if ev.GetAtPeriodEnd() {
			return "Cancellation scheduled for " + day(ev.GetCancelAt().AsTime()) + ": " + planName(ev.GetSubscription().GetPlan()), "info"
		}
		return "Subscription canceled: " + planName(ev.GetSubscription().GetPlan()), "info"
	case *billingv1.SubscriptionReactivated:
		return "Subscription reactivated: " + subLine(ev.GetSubscription()), "ok"
	case *billingv1.SubscriptionPastDue:
		return "Subscription past due: " + planName(ev.GetSubscription().GetPlan()), "failed"
	case *billingv1.PaymentSucceeded:
		return "Payment received: " + money(ev.GetAmount(), ev.GetCurrency()), "ok"
	case *billingv1.PaymentFailed:
		s := fmt.Sprintf("Payment failed: %s, attempt %d", money(ev.GetAmount(), ev.GetCurrency()), ev.GetAttemptCount())
		if c := ev.GetDeclineCode(); c != "" {
			s += " (" + c + ")"
		} else if c := ev.GetFailureCode(); c != "" {
			s += " (" + c + ")"
		}
		switch {
		case ev.GetFinal():
			s += "; no retries left"
		case ev.GetNextPaymentAttempt() != nil:
			s += "; retry on " + day(ev.GetNextPaymentAttempt().AsTime())
		}
		return s, "failed"
	case *billingv1.RefundIssued:
		return "Refund issued: " + money(ev.GetAmount(), ev.GetCurrency()), "info"
	case *billingv1.DisputeOpened:
		return "Dispute opened: " + money(ev.GetDispute().GetAmount(), ev.GetDispute().GetCurrency()) + " (" + ev.GetDispute().GetReason() + ")", "failed"
	case *billingv1.DisputeClosed:
		return "Dispute closed: " + strings.ToLower(strings.TrimPrefix(ev.GetOutcome().String(), "DISPUTE_OUTCOME_")), "info"
	case *crmv1.ContactSynced:
		return "CRM contact updated (" + ev.GetProvider() + " " + ev.GetContactId() + ")", "ok"
	case *crmv1.ContactPendingRetry:
		return fmt.Sprintf("CRM update pending: attempt %d failed (%s), next attempt %s", ev.GetAttempt(), className(ev.GetErrorClass()), ev.GetNextAttemptAt().AsTime().UTC().Format(time.RFC3339)), "pending"
	case *crmv1.ContactFailed:
		return "CRM update failed (" + className(ev.GetErrorClass()) + "): " + ev.GetReason(), "failed"
	case *supportv1.TicketOpened:
		return "Support ticket opened: #" + ev.GetTicketId() + " (" + ev.GetRule() + ", " + priorityName(ev.GetPriority()) + ")", "ok"
	case *supportv1.TicketFailed:
		return "Support ticket not opened (" + ev.GetRule() + ", " + className(ev.GetErrorClass()) + "): " + ev.GetReason(), "failed"
	}
	return e.Subject, "info"
}

func subLine(s *billingv1.Subscription) string {
	line := planName(s.GetPlan()) + " (" + statusName(s.GetStatus()) + ")"
	if p := s.GetPlan(); p.GetMrr() > 0 {
		line += ", MRR " + money(p.GetMrr(), p.GetCurrency())
	}
	return line
}

func planName(p *billingv1.Plan) string {
	if name := moneyfmt.PlanName(p); name != "" {
		return name
	}
	return "unknown plan"
}

func statusName(s billingv1.SubscriptionStatus) string {
	if s == billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_UNSPECIFIED {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "SUBSCRIPTION_STATUS_"))
}

func intervalName(i billingv1.Interval) string {
	if i == billingv1.Interval_INTERVAL_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(i.String(), "INTERVAL_"))
}

func className(c commonv1.ErrorClass) string {
	if c == commonv1.ErrorClass_ERROR_CLASS_UNSPECIFIED {
		return "unknown"
	}
	return strings.ToLower(strings.TrimPrefix(c.String(), "ERROR_CLASS_"))
}

func priorityName(p supportv1.Priority) string {
	if p == supportv1.Priority_PRIORITY_UNSPECIFIED {
		return "normal"
	}
	return strings.ToLower(strings.TrimPrefix(p.String(), "PRIORITY_"))
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

// money renders an amount in minor units for people, in its currency's
// exponent (JPY has no decimals).
func money(amount int64, currency string) string { return moneyfmt.Format(amount, currency) }
