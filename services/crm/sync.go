package crm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// Provider names the CRM in outcomes.
const Provider = "hubspot"

// Upserter writes contacts; *hubspot.Client is the implementation. It
// returns classified errors (platform/errclass) and never retries itself.
type Upserter interface {
	UpsertContacts(ctx context.Context, in []hubspot.ContactInput) ([]hubspot.ContactResult, error)
}

var _ Upserter = (*hubspot.Client)(nil)

// Syncer handles billing events. It is safe for concurrent use; Run must
// be running for Handle to make progress (it sends the batches).
type Syncer struct {
	batch    *batcher
	ledger   *ledger.Ledger
	js       jetstream.JetStream
	consumer string
	log      *slog.Logger
	now      func() time.Time
	outcomes metric.Int64Counter
}

// NewSyncer wires the handler; consumerName keys its ledger rows.
// Upserts of concurrent events go to HubSpot together, each waiting at most
// linger for company. A call carries up to hubspot.MaxBatchInputs contacts
// and closes once every handler that may still send an update has (see
// batcher): no more can come, and lingering would only cap throughput.
// Updates of one contact that come together share its input.
func NewSyncer(crm Upserter, linger time.Duration, l *ledger.Ledger, js jetstream.JetStream, consumerName string, log *slog.Logger) *Syncer {
	s := &Syncer{batch: newBatcher(crm, linger), ledger: l, js: js, consumer: consumerName, log: log, now: time.Now}
	_ = s.Instrument(noop.NewMeterProvider())
	return s
}

// Run sends the batches until ctx is cancelled.
func (s *Syncer) Run(ctx context.Context) error { return s.batch.Run(ctx) }

var errMissingResult = errclass.Transient(errors.New("hubspot returned no result for the contact"))

// HandleBatch handles the messages of one pull side by side (a
// consumer.BatchHandler), each settled by its own outcome: their claims
// share the ledger's round trips, and their updates one HubSpot call, since
// every handler takes its ticket before any of them starts.
func (s *Syncer) HandleBatch(ctx context.Context, ms []*consumer.Message) error {
	tickets := make(map[*consumer.Message]*ticket, len(ms))
	for _, m := range ms {
		tickets[m] = s.batch.enter()
		tickets[m].seq = m.Sequence
	}
	return consumer.Each(func(ctx context.Context, m *consumer.Message) error {
		return s.handle(ctx, m, tickets[m])
	}, len(ms))(ctx, ms)
}

// Handle upserts the contact a billing event implies, once, and publishes
// crm.contact.synced.
func (s *Syncer) Handle(ctx context.Context, m *consumer.Message) error {
	t := s.batch.enter()
	t.seq = m.Sequence
	return s.handle(ctx, m, t)
}

func (s *Syncer) handle(ctx context.Context, m *consumer.Message, t *ticket) error {
	defer t.done()
	ctx = withTicket(ctx, t)
	msg, err := subjects.Decode(m.Subject, m.Data)
	if err != nil {
		return errclass.Permanent(err)
	}
	if be, ok := msg.(subjects.BillingEvent); ok {
		m.Customer = be.GetMeta().GetCanonicalCustomerId()
		ctx = logging.WithCustomerID(ctx, m.Customer)
	}
	email, props, ok := contactUpdate(msg)
	if !ok {
		s.log.DebugContext(ctx, "billing event without an email yet; nothing to sync", "subject", m.Subject)
		return nil
	}
	if !sinktext.ValidEmail(strings.TrimSpace(email)) {
		return s.unusableEmail(ctx, m, emailProblem(email))
	}
	key := ledger.Key{Consumer: s.consumer, MessageID: m.ID, Effect: "hubspot.upsert"}
	once := s.ledger.Once
	if m.FirstTry() {
		once = s.ledger.OnceFresh // nothing recorded yet: skip the lookup before the claim
	}
	contactID, err := once(ctx, key, func(ctx context.Context) ([]byte, error) {
		id, err := s.batch.Upsert(ctx, hubspot.ContactInput{Email: email, Properties: props})
		return []byte(id), err
	})
	if errors.Is(err, hubspot.ErrInvalidEmail) {
		return s.unusableEmail(ctx, m, "HubSpot refused it (INVALID_EMAIL)")
	}
	if err != nil {
		return fmt.Errorf("upsert contact: %w", err)
	}
	canonical := msg.(subjects.BillingEvent).GetMeta().GetCanonicalCustomerId()
	id := subjects.CRMContactSynced + ":" + m.ID
	return s.publish(ctx, subjects.CRMContactSynced, id, &crmv1.ContactSynced{
		EventId: id, CanonicalCustomerId: canonical, SourceEventId: m.ID, OccurredAt: timestamppb.New(s.now()),
		ContactId: string(contactID), Attempt: uint32(m.Attempt), Provider: Provider,
	})
}

// unusableEmail records a sync that cannot happen because the customer's
// email cannot be HubSpot's key (why says what is wrong with it, never the
// email itself): nothing is sent to HubSpot, and crm.contact.failed
// (permanent) says so, which the console shows on the customer as a CRM
// update given up and the digest counts. It is not a dead letter: no
// retry or replay of this event can succeed, while correcting the email
// in Stripe brings a new event that syncs the contact. The billing event
// stays in the event log as it came.
func (s *Syncer) unusableEmail(ctx context.Context, m *consumer.Message, why string) error {
	canonical := m.Customer
	s.log.WarnContext(ctx, "contact not synced: the customer's email cannot be a HubSpot contact's key", "problem", why, "subject", m.Subject)
	id := subjects.CRMContactFailed + ":" + m.ID
	return s.publish(ctx, subjects.CRMContactFailed, id, &crmv1.ContactFailed{
		EventId: id, CanonicalCustomerId: canonical, SourceEventId: m.ID, OccurredAt: timestamppb.New(s.now()),
		Attempt: uint32(m.Attempt), Provider: Provider, ErrorClass: errclass.ClassPermanent.Proto(),
		Reason: "not sent to HubSpot: the customer's email is not an address HubSpot accepts (" + why +
			"); correct it in Stripe and the next billing event syncs the contact",
	})
}

// emailProblem says, without repeating it, what is wrong with an email
// sinktext.ValidEmail refuses.
func emailProblem(email string) string {
	e := strings.TrimSpace(email)
	switch {
	case strings.ContainsFunc(e, unicode.IsSpace):
		return "it contains white space"
	case !strings.Contains(e, "@"):
		return "it has no @"
	case len(e) > sinktext.MaxEmail:
		return fmt.Sprintf("it is longer than %d characters", sinktext.MaxEmail)
	}
	return "it is not a well-formed address"
}

// OnFailure publishes crm.contact.pending_retry (retryAt set) or
// crm.contact.failed (dead-lettered); it is the consumer's OnFailure hook.
func (s *Syncer) OnFailure(ctx context.Context, m *consumer.Message, class errclass.Class, reason string, retryAt time.Time) {
	var canonical string
	if msg, err := subjects.Decode(m.Subject, m.Data); err == nil {
		if be, ok := msg.(subjects.BillingEvent); ok {
			canonical = be.GetMeta().GetCanonicalCustomerId()
		}
	}
	var err error
	if !retryAt.IsZero() {
		id := subjects.CRMContactPendingRetry + ":" + m.ID + ":" + strconv.Itoa(m.Attempt)
		err = s.publish(ctx, subjects.CRMContactPendingRetry, id, &crmv1.ContactPendingRetry{
			EventId: id, CanonicalCustomerId: canonical, SourceEventId: m.ID, OccurredAt: timestamppb.New(s.now()),
			Attempt: uint32(m.Attempt), Provider: Provider, NextAttemptAt: timestamppb.New(retryAt),
			ErrorClass: class.Proto(), Reason: reason,
		})
	} else {
		id := subjects.CRMContactFailed + ":" + m.ID
		err = s.publish(ctx, subjects.CRMContactFailed, id, &crmv1.ContactFailed{
			EventId: id, CanonicalCustomerId: canonical, SourceEventId: m.ID, OccurredAt: timestamppb.New(s.now()),
			Attempt: uint32(m.Attempt), Provider: Provider, ErrorClass: class.Proto(), Reason: reason,
		})
	}
	if err != nil {
		s.log.WarnContext(ctx, "publish crm failure outcome", "error", err)
	}
}

func (s *Syncer) publish(ctx context.Context, subject, id string, m proto.Message) error {
	first, err := natsbus.PublishProtoFirst(ctx, s.js, subject, id, m)
	if err != nil {
		return err
	}
	if first {
		s.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("result", strings.TrimPrefix(subject, "crm.contact."))))
	}
	return nil
}

// Instrument makes the syncer count its outcomes in mp
// (switchyard_crm_sync_total{result=synced|pending_retry|failed}: the CRM
// sync success rate is synced / (synced + failed)).
func (s *Syncer) Instrument(mp metric.MeterProvider) error {
	var err error
	s.outcomes, err = mp.Meter("github.com/switchyard/switchyard/services/crm").Int64Counter("switchyard_crm_sync",
		metric.WithDescription("CRM sync outcomes published, by result (synced, pending_retry, failed)"))
	if err != nil {
		return err
	}
	for _, r := range []string{"synced", "pending_retry", "failed"} {
		s.outcomes.Add(context.Background(), 0, metric.WithAttributes(attribute.String("result", r)))
	}
	return nil
}
