package support

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/sinktext"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

// Provider names the support desk in outcomes.
const Provider = "zendesk"

// Desk opens tickets idempotently by external id; *zendesk.Client is the
// implementation. With zendesk.MaybeSent it looks the external id up before
// creating, with zendesk.NeverSent it creates at once (see priorOf). Errors
// are classified (platform/errclass).
type Desk interface {
	EnsureTicket(ctx context.Context, t zendesk.NewTicket, prior zendesk.Prior) (zendesk.Ticket, bool, error)
}

var _ Desk = (*zendesk.Client)(nil)

// Opener turns billing events into tickets. It is safe for concurrent use.
type Opener struct {
	desk     Desk
	rules    *Rules
	groups   map[string]int64 // rule group name → Zendesk group id
	ledger   *ledger.Ledger
	js       jetstream.JetStream
	consumer string
	log      *slog.Logger
	now      func() time.Time

	tickets metric.Int64Counter     // switchyard_support_tickets_total{result}
	latency metric.Float64Histogram // switchyard_support_ticket_latency_seconds{rule}
}

// NewOpener wires the handler. l must hold its claims on a pool of its own
// (ledger.WithClaimPool): the handler reads and writes the ledger's pool
// while it holds a ticket's claim (priorOf).
func NewOpener(desk Desk, rules *Rules, groups map[string]int64, l *ledger.Ledger, js jetstream.JetStream, consumerName string, log *slog.Logger) *Opener {
	o := &Opener{desk: desk, rules: rules, groups: groups, ledger: l, js: js, consumer: consumerName, log: log, now: time.Now}
	_ = o.Instrument(noop.NewMeterProvider())
	return o
}

// Instrument makes the opener report its metrics to mp: tickets by
// outcome, and the time from the Stripe event to its ticket.
func (o *Opener) Instrument(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/switchyard/switchyard/services/support")
	var err error
	if o.tickets, err = m.Int64Counter("switchyard_support_tickets", metric.WithDescription("Ticket outcomes published, by result (opened, failed)")); err != nil {
		return err
	}
	for _, r := range []string{"opened", "failed"} {
		o.tickets.Add(context.Background(), 0, metric.WithAttributes(attribute.String("result", r)))
	}
	o.latency, err = m.Float64Histogram("switchyard_support_ticket_latency", metric.WithUnit("s"),
		metric.WithDescription("Time from the hub receiving the Stripe event to its ticket being open, by rule"),
		metric.WithExplicitBucketBoundaries(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600))
	return err
}

// ExternalID is the ticket key for (source event, rule): the same on every
// retry, redelivery and replay of the event.
func ExternalID(rule, sourceEventID string) string { return "switchyard:" + rule + ":" + sourceEventID }

// Handle opens the ticket of every rule the event triggers, once each.
func (o *Opener) Handle(ctx context.Context, m *consumer.Message) error {
	msg, err := subjects.Decode(m.Subject, m.Data)
	if err != nil {
		return errclass.Permanent(err)
	}
	be, ok := msg.(subjects.BillingEvent)
	if !ok {
		return nil
	}
	m.Customer = be.GetMeta().GetCanonicalCustomerId()
	ctx = logging.WithCustomerID(ctx, m.Customer)
	data, final := ticketData(msg)
	requester, note := requesterOf(be.GetMeta().GetEmail(), data.Name)
	for _, r := range o.rules.Match(m.Subject, final) {
		if skipSuperseded(be, r) {
			continue // a late state change (say a cancellation since undone) opens no ticket
		}
		subject, body, err := r.render(data)
		if err != nil {
			return errclass.Permanent(fmt.Errorf("rule %s: %w", r.Name, err))
		}
		ext := ExternalID(r.Name, m.ID)
		key := ledger.Key{Consumer: o.consumer, MessageID: m.ID, Effect: ticketEffect + r.Name}
		once := o.ledger.Once
		if m.FirstTry() {
			once = o.ledger.OnceFresh // nothing recorded yet: skip the lookup before the claim
		}
		ticketID, err := once(ctx, key, func(ctx context.Context) ([]byte, error) {
			prior, err := o.priorOf(ctx, m, r.Name)
			if err != nil {
				return nil, err
			}
			t := zendesk.NewTicket{
				ExternalID: ext, Subject: subject, Body: body + note, Priority: r.Priority, Type: r.Type,
				Tags: append(append([]string(nil), r.Tags...), r.Kind), GroupID: o.groups[r.Group], AssigneeID: r.Assignee,
				Requester: requester,
			}
			ticket, _, err := o.desk.EnsureTicket(ctx, t, prior)
			if err != nil {
				return nil, err
			}
			return []byte(strconv.FormatInt(ticket.ID, 10)), nil
		})
		if err != nil {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
		id := subjects.SupportTicketOpened + ":" + r.Name + ":" + m.ID
		now := o.now()
		if err := o.publish(ctx, subjects.SupportTicketOpened, id, &supportv1.TicketOpened{
			EventId: id, CanonicalCustomerId: be.GetMeta().GetCanonicalCustomerId(), SourceEventId: m.ID,
			OccurredAt: timestamppb.New(now), Rule: r.Name, TicketId: string(ticketID), Priority: priority(r.Priority),
			Provider: Provider, ExternalId: ext, Group: r.Group,
		}); err != nil {
			return err
		}
		rule := metric.WithAttributes(attribute.String("rule", r.Name))
		// From the hub's receipt, not Stripe's created: an event can reach
		// the hub days after Stripe created it (retries, reconcile).
		if at := be.GetMeta().GetReceivedAt(); at != nil {
			o.latency.Record(ctx, max(now.Sub(at.AsTime()).Seconds(), 0), rule)
		}
	}
	return nil
}

// priorOf is the one home of the rule that decides whether opening a
// ticket looks its external id up first (zendesk.MaybeSent, two requests
// when none is found) or creates it at once (zendesk.NeverSent, one
// request). It runs holding the ticket's ledger claim, so no other run of
// this (message, rule) is between its check and its create. See the
// package doc for why each path still opens exactly one ticket.
//
// An earlier run may have reached Zendesk when the message is a
// redelivery (Attempt is JetStream's delivery count, 1 on the first
// delivery), a replay of a dead letter, or when any run of this (message,
// rule) got as far as sending: the attempted mark, recorded in the ledger
// before every create. The mark is what the delivery count cannot see: a
// first delivery that waited for the claim behind another delivery of the
// same message (a replay, or this one's redelivery after AckWait) whose
// create's answer was lost, and a second copy of the message published
// after JetStream's duplicate window. Every run that may create writes the
// mark before the request leaves, in the same round trip that tells whether
// it was there (ledger.MarkAttempt).
func (o *Opener) priorOf(ctx context.Context, m *consumer.Message, rule string) (zendesk.Prior, error) {
	first, err := o.ledger.MarkAttempt(ctx, ledger.Key{Consumer: o.consumer, MessageID: m.ID, Effect: ticketEffect + rule})
	if err != nil {
		return 0, err
	}
	if first && m.FirstTry() {
		return zendesk.NeverSent, nil
	}
	return zendesk.MaybeSent, nil
}

// ticketEffect prefixes a ticket's ledger effect, "zendesk.ticket:<rule>";
// its attempted mark (priorOf) is ledger.AttemptMark of the same name.
const ticketEffect = "zendesk.ticket:"

// requesterOf returns the ticket's requester: the customer, when the
// billing event's email (the verified profile email identity publishes) is
// an address Zendesk can file a user under. Otherwise the ticket has no
// requester (the API agent stands in) and note, for the body, says why and
// shows the email as inert text — an email with spaces must open an
// ordinary ticket, not dead-letter the event on Zendesk's 422.
func requesterOf(email, name string) (*zendesk.Requester, string) {
	switch {
	case email == "":
		return nil, ""
	case sinktext.ValidEmail(email):
		return &zendesk.Requester{Name: name, Email: email}, ""
	}
	return nil, "\n\nNo requester: the customer's email on file (" + zendesk.Value(email) +
		") is not a valid address, so this ticket was opened without one. Correct it in Stripe; later tickets will have it."
}

// skipSuperseded: a late state change opens no ticket; facts (payments,
// disputes, refunds) always do.
func skipSuperseded(be subjects.BillingEvent, r *Rule) bool {
	return be.GetMeta().GetSuperseded() && r.On != subjects.BillingPaymentFailed && r.On != subjects.BillingDisputeOpened && r.On != subjects.BillingRefundIssued
}

// OnFailure publishes support.ticket.failed once the message is
// dead-lettered (retries are the framework's business); critical rules are
// flagged for the alerting path.
func (o *Opener) OnFailure(ctx context.Context, m *consumer.Message, class errclass.Class, reason string, retryAt time.Time) {
	if !retryAt.IsZero() {
		return
	}
	msg, err := subjects.Decode(m.Subject, m.Data)
	if err != nil {
		return
	}
	be, ok := msg.(subjects.BillingEvent)
	if !ok {
		return
	}
	_, final := ticketData(msg)
	for _, r := range o.rules.Match(m.Subject, final) {
		if skipSuperseded(be, r) {
			continue // Handle never opens these
		}
		if _, opened, err := o.ledger.Lookup(ctx, ledger.Key{Consumer: o.consumer, MessageID: m.ID, Effect: ticketEffect + r.Name}); err == nil && opened {
			continue // this rule's ticket was opened; another rule failed
		}
		id := subjects.SupportTicketFailed + ":" + r.Name + ":" + m.ID
		if err := o.publish(ctx, subjects.SupportTicketFailed, id, &supportv1.TicketFailed{
			EventId: id, CanonicalCustomerId: be.GetMeta().GetCanonicalCustomerId(), SourceEventId: m.ID,
			OccurredAt: timestamppb.New(o.now()), Rule: r.Name, Priority: priority(r.Priority), Provider: Provider,
			Attempt: uint32(m.Attempt), ErrorClass: class.Proto(), Reason: reason, Critical: r.Critical,
		}); err != nil {
			o.log.WarnContext(ctx, "publish support failure outcome", "error", err)
		}
		if r.Critical {
			o.log.ErrorContext(ctx, "CRITICAL: a support ticket could not be opened", "rule", r.Name, "class", class.String(),
				"replay", "switchyard dlq list --consumer "+o.consumer)
		}
	}
}

// publish publishes an outcome and counts it once (not again when a
// redelivery publishes it again).
func (o *Opener) publish(ctx context.Context, subject, id string, m proto.Message) error {
	first, err := natsbus.PublishProtoFirst(ctx, o.js, subject, id, m)
	if err == nil && first {
		result := "opened"
		if subject == subjects.SupportTicketFailed {
			result = "failed"
		}
		o.tickets.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	}
	return err
}

func priority(p string) supportv1.Priority {
	switch p {
	case "urgent":
		return supportv1.Priority_PRIORITY_URGENT
	case "high":
		return supportv1.Priority_PRIORITY_HIGH
	case "normal":
		return supportv1.Priority_PRIORITY_NORMAL
	case "low":
		return supportv1.Priority_PRIORITY_LOW
	}
	return supportv1.Priority_PRIORITY_UNSPECIFIED
}
