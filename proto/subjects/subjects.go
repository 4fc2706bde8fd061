// Package subjects binds every event contract in proto/gen to the NATS
// subject it is published on, so that publishers and subscribers never type
// a subject by hand. The binding is one-to-one: each message type has one
// subject and each subject carries one message type (dead letters: one type
// on every `dlq.<consumer>` subject). See proto/README.md for what each
// subject means; subjects change only compatibly (add, never rename).
//
// Publish:
//
//	subj, err := subjects.Of(ev) // billing.subscription.started
//	data, err := proto.Marshal(ev)
//
// Subscribe to a wildcard and decode whatever arrives:
//
//	m, err := subjects.Decode(msg.Subject(), msg.Data())
//	if ev, ok := m.(subjects.BillingEvent); ok { ev.GetMeta().GetEventId() }
package subjects

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	dlqv1 "github.com/switchyard/switchyard/proto/gen/switchyard/dlq/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/wire"
)

// Domain events (stream BILLING), emitted by identity.
const (
	BillingCustomerUpserted        = "billing.customer.upserted"
	BillingSubscriptionStarted     = "billing.subscription.started"
	BillingSubscriptionUpgraded    = "billing.subscription.upgraded"
	BillingSubscriptionDowngraded  = "billing.subscription.downgraded"
	BillingSubscriptionTrialEnding = "billing.subscription.trial_ending"
	BillingSubscriptionCanceled    = "billing.subscription.canceled"
	BillingSubscriptionReactivated = "billing.subscription.reactivated"
	BillingSubscriptionPastDue     = "billing.subscription.past_due"
	BillingPaymentSucceeded        = "billing.payment.succeeded"
	BillingPaymentFailed           = "billing.payment.failed"
	BillingRefundIssued            = "billing.refund.issued"
	BillingDisputeOpened           = "billing.dispute.opened"
	BillingDisputeClosed           = "billing.dispute.closed"
)

// CRM sync outcomes (stream CRM).
const (
	CRMContactSynced       = "crm.contact.synced"
	CRMContactPendingRetry = "crm.contact.pending_retry"
	CRMContactFailed       = "crm.contact.failed"
)

// Support automation outcomes (stream SUPPORT).
const (
	SupportTicketOpened = "support.ticket.opened"
	SupportTicketFailed = "support.ticket.failed"
)

// DLQ returns the dead-letter subject of a durable consumer,
// `dlq.<consumer>`. The consumer name must be a single subject token (see
// ValidToken); Of checks that for a DeadLetter.
func DLQ(consumer string) string { return wire.DLQPrefix + consumer }

// Binding ties a subject to the message type published on it.
type Binding struct {
	// Subject is the exact subject, or wire.DLQAll for the dead-letter
	// envelope, which is published on DLQ(consumer).
	Subject string
	Type    protoreflect.MessageType
}

func bind(subject string, m proto.Message) Binding {
	return Binding{Subject: subject, Type: m.ProtoReflect().Type()}
}

// bindings is the whole contract. Adding a message type means adding it
// here and in proto/README.md; the tests check the rest.
var bindings = []Binding{
	bind(BillingCustomerUpserted, (*billingv1.CustomerUpserted)(nil)),
	bind(BillingSubscriptionStarted, (*billingv1.SubscriptionStarted)(nil)),
	bind(BillingSubscriptionUpgraded, (*billingv1.SubscriptionUpgraded)(nil)),
	bind(BillingSubscriptionDowngraded, (*billingv1.SubscriptionDowngraded)(nil)),
	bind(BillingSubscriptionTrialEnding, (*billingv1.SubscriptionTrialEnding)(nil)),
	bind(BillingSubscriptionCanceled, (*billingv1.SubscriptionCanceled)(nil)),
	bind(BillingSubscriptionReactivated, (*billingv1.SubscriptionReactivated)(nil)),
	bind(BillingSubscriptionPastDue, (*billingv1.SubscriptionPastDue)(nil)),
	bind(BillingPaymentSucceeded, (*billingv1.PaymentSucceeded)(nil)),
	bind(BillingPaymentFailed, (*billingv1.PaymentFailed)(nil)),
	bind(BillingRefundIssued, (*billingv1.RefundIssued)(nil)),
	bind(BillingDisputeOpened, (*billingv1.DisputeOpened)(nil)),
	bind(BillingDisputeClosed, (*billingv1.DisputeClosed)(nil)),

	bind(CRMContactSynced, (*crmv1.ContactSynced)(nil)),
	bind(CRMContactPendingRetry, (*crmv1.ContactPendingRetry)(nil)),
	bind(CRMContactFailed, (*crmv1.ContactFailed)(nil)),

	bind(SupportTicketOpened, (*supportv1.TicketOpened)(nil)),
	bind(SupportTicketFailed, (*supportv1.TicketFailed)(nil)),

	bind(wire.DLQAll, (*dlqv1.DeadLetter)(nil)),
}

var bySubject, byType = index(bindings)

func index(bs []Binding) (map[string]protoreflect.MessageType, map[protoreflect.FullName]string) {
	bySubject := make(map[string]protoreflect.MessageType, len(bs))
	byType := make(map[protoreflect.FullName]string, len(bs))
	for _, b := range bs {
		bySubject[b.Subject] = b.Type
		byType[b.Type.Descriptor().FullName()] = b.Subject
	}
	return bySubject, byType
}

// All returns every binding, billing first, then crm, support and dlq. The
// slice is a copy.
func All() []Binding { return append([]Binding(nil), bindings...) }

// Errors returned by Of, Type and Decode.
var (
	// ErrUnbound means the message type has no subject (it is not an event, or
	// was not added to the bindings).
	ErrUnbound = errors.New("message type has no subject")
	// ErrUnknownSubject means no message type is published on the subject.
	ErrUnknownSubject = errors.New("no message type for subject")
	// ErrInvalidConsumer means a dead letter's consumer is not one subject token.
	ErrInvalidConsumer = errors.New("dead letter consumer is not a single subject token")
)

// Of returns the subject to publish m on. For a *dlqv1.DeadLetter that is
// DLQ(m.Consumer), and the consumer must be a valid token.
func Of(m proto.Message) (string, error) {
	if dl, ok := m.(*dlqv1.DeadLetter); ok {
		if !ValidToken(dl.GetConsumer()) {
			return "", fmt.Errorf("%q: %w", dl.GetConsumer(), ErrInvalidConsumer)
		}
		return DLQ(dl.GetConsumer()), nil
	}
	name := m.ProtoReflect().Descriptor().FullName()
	subject, ok := byType[name]
	if !ok {
		return "", fmt.Errorf("%s: %w", name, ErrUnbound)
	}
	return subject, nil
}

// Type returns the message type published on subject: an exact subject from
// this package, or `dlq.<consumer>` for the dead-letter envelope.
func Type(subject string) (protoreflect.MessageType, error) {
	if t, ok := bySubject[subject]; ok && subject != wire.DLQAll {
		return t, nil
	}
	if consumer, ok := strings.CutPrefix(subject, wire.DLQPrefix); ok && ValidToken(consumer) {
		return bySubject[wire.DLQAll], nil
	}
	return nil, fmt.Errorf("%q: %w", subject, ErrUnknownSubject)
}

// Decode unmarshals data received on subject into a new message of the
// subject's type. Unknown fields (from a newer producer) are kept.
func Decode(subject string, data []byte) (proto.Message, error) {
	t, err := Type(subject)
	if err != nil {
		return nil, err
	}
	m := t.New().Interface()
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("decode %s from %q: %w", t.Descriptor().FullName(), subject, err)
	}
	return m, nil
}

// BillingEvent is implemented by every message published under `billing.>`:
// each carries the common envelope in field 1.
type BillingEvent interface {
	proto.Message
	GetMeta() *billingv1.EventMeta
}

// ValidToken reports whether s can be one token of a NATS subject: not
// empty, and no '.', '*', '>' or whitespace.
func ValidToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}
