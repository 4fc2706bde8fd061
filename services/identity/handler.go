package identity

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stripe/stripe-go/v76"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

// StripeReader reads what identity needs from the Stripe API: the customer
// of a charge (for disputes and refunds that name only their charge), an
// object's current state (to settle a same-second tie between two versions)
// and a product's name (to name plans). Errors are classified (errclass,
// with Stripe's Retry-After as the hint); it is safe for concurrent use.
type StripeReader interface {
	// ChargeCustomer returns what the charge says about whose it is: its
	// customer (its invoice's, if the charge names only an invoice), invoice
	// and payment intent (all empty for a guest payment) and, as unverified
	// contact data, its billing email.
	ChargeCustomer(ctx context.Context, chargeID string) (ChargeRefs, error)
	// ObjectState returns a subscription's status or a customer's
	// normalised email, as Version.Status holds them.
	ObjectState(ctx context.Context, kind, id string) (string, error)
	// ProductName returns the product's name.
	ProductName(ctx context.Context, productID string) (string, error)
}

// ChargeRefs is what the Stripe API says about a charge's owner.
type ChargeRefs struct {
	// CustomerID, InvoiceID and PaymentIntentID are the charge's customer
	// (cus_), invoice (in_) and payment intent (pi_) ids; "" if none.
	CustomerID, InvoiceID, PaymentIntentID string
	// BillingEmail is billing_details.email, else receipt_email,
	// normalised and valid, or "". Typed by whoever paid: unverified
	// contact data, never an identifier.
	BillingEmail string
}

// Service handles Stripe events. It is safe for concurrent use.
type Service struct {
	store  *Store
	js     jetstream.JetStream
	stripe StripeReader // nil: no Stripe API configured
	// products names plans by their product (nil without the Stripe API).
	products *productNames
	log      *slog.Logger
	events   metric.Int64Counter // switchyard_identity_events_published_total{subject}
}

// NewService wires the handler. stripe may be nil: then disputes naming
// only their charge wait for the charge's event, ties are settled by status
// precedence, and plans are named only by what the webhook carries.
func NewService(store *Store, js jetstream.JetStream, stripe StripeReader, log *slog.Logger) *Service {
	s := &Service{store: store, js: js, stripe: stripe, log: log}
	if stripe != nil {
		s.products = newProductNames(stripe.ProductName, log, time.Now, productNamesSize)
	}
	_ = s.Instrument(noop.NewMeterProvider())
	return s
}

// Instrument counts the domain events published, by subject (a bounded
// set: subjects.All), in mp; billing.payment.succeeded is the "paid
// events" the automation failure rate is measured against.
func (s *Service) Instrument(mp metric.MeterProvider) error {
	var err error
	s.events, err = mp.Meter("github.com/switchyard/switchyard/services/identity").Int64Counter("switchyard_identity_events_published",
		metric.WithDescription("Domain events published on billing.>, by subject"))
	if err != nil {
		return err
	}
	for _, b := range subjects.All() {
		if strings.HasPrefix(b.Subject, "billing.") {
			s.events.Add(context.Background(), 0, metric.WithAttributes(attribute.String("subject", b.Subject)))
		}
	}
	return nil
}

// versioned lists the object kinds whose state an event replaces; other
// kinds (invoices, charges, disputes) are facts that are never stale.
var versioned = map[string]bool{"customer": true, "subscription": true}

// Handle resolves the event's customer and publishes its domain events.
// Every step is idempotent: a redelivery resolves to the same customer and
// publishes the same message ids.
func (s *Service) Handle(ctx context.Context, m *consumer.Message) error {
	f, ev, err := readEvent(m)
	if err != nil {
		return err
	}
	res, err := s.resolve(ctx, &f)
	if errors.Is(err, ErrUnknownCustomer) {
		return s.noCustomer(ctx, f)
	}
	if err != nil {
		return err
	}
	ctx = logging.WithCustomerID(ctx, res.CanonicalID)
	m.Customer = res.CanonicalID
	outs, err := s.domainEvents(ctx, ev, f, res)
	if err != nil {
		return err
	}
	return s.publishAll(ctx, outs)
}

// readEvent reads the message's Stripe event (see ExtractFacts) and when
// the hub received it. Receipt is the gateway's header, not the event's
// bytes; an event stored without it (before the gateway set it) has no
// receipt time.
func readEvent(m *consumer.Message) (Facts, *stripe.Event, error) {
	f, ev, err := ExtractFacts(m.Data)
	if err != nil {
		return Facts{}, nil, err
	}
	if at, err := time.Parse(time.RFC3339Nano, m.Header.Get(wire.HeaderReceivedAt)); err == nil {
		f.ReceivedAt = at.UTC()
	}
	return f, ev, nil
}

// resolve finds or makes the event's customer in the store, asking Stripe
// when the store cannot decide alone: which of two same-second versions of
// the event's object is current, and whose is a charge never seen. It
// returns ErrUnknownCustomer as it is (see noCustomer); any other error is
// Handle's to return.
func (s *Service) resolve(ctx context.Context, f *Facts) (Resolution, error) {
	in := s.resolutionInput(*f)
	res, err := s.store.ResolveInput(ctx, in)
	if errors.Is(err, ErrVersionTie) {
		in = s.withStripeState(ctx, *f, in)
		res, err = s.store.ResolveInput(ctx, in)
	}
	if errors.Is(err, ErrUnknownCustomer) && f.ChargeID != "" && s.stripe != nil {
		if in, err = s.withChargeOwner(ctx, f, in); err != nil {
			return Resolution{}, err
		}
		res, err = s.store.ResolveInput(ctx, in)
	}
	if err != nil && !errors.Is(err, ErrUnknownCustomer) {
		return res, fmt.Errorf("resolve customer: %w", err)
	}
	return res, err
}

// resolutionInput is what the store needs from the event: the identifiers
// it names, the profile (authoritative from a customer object only) and,
// for an object whose state the event replaces, its version — a
// customer's email stands for its status. With the Stripe API a
// same-second tie of versions is asked about (Version.AskOnTie).
func (s *Service) resolutionInput(f Facts) Input {
	in := Input{
		EventID: f.EventID, IDs: identifiers(f), Email: f.Email, Name: f.Name,
		Authoritative: f.ObjectKind == "customer",
	}
	if versioned[f.ObjectKind] && f.ObjectID != "" {
		in.Version = Version{ObjectID: f.ObjectID, Created: f.Created.Unix(), EventID: f.EventID, Status: f.ObjectStatus, AskOnTie: s.stripe != nil}
		if f.ObjectKind == "customer" {
			in.Version.Status = f.Email
		}
	}
	return in
}

// withStripeState settles a same-second tie of two versions of the
// event's object (ErrVersionTie, asked only with the Stripe API): it asks
// Stripe which is current. If Stripe cannot answer, status precedence
// decides.
func (s *Service) withStripeState(ctx context.Context, f Facts, in Input) Input {
	state, err := s.stripe.ObjectState(ctx, f.ObjectKind, f.ObjectID)
	if err != nil {
		s.log.WarnContext(ctx, "could not refetch a tied object; status precedence decides", "object_id", f.ObjectID, "error", err)
	}
	in.Version.AskOnTie, in.Version.StripeState = false, state
	return in
}

// withChargeOwner asks Stripe whose is a charge that a dispute or refund
// names and identity never saw, and adds only verified links to in: the
// charge's customer, or its invoice or payment intent if identity has
// linked either to a customer. Its billing email was typed by whoever
// paid: shown (f.UnverifiedEmail), never a link, so a stranger's card form
// cannot attach a chargeback to someone else. A charge of no Stripe
// customer that none of its links resolves is its own customer, unlinked
// (Input.GuestCharge): its dispute still needs a ticket.
func (s *Service) withChargeOwner(ctx context.Context, f *Facts, in Input) (Input, error) {
	refs, err := s.stripe.ChargeCustomer(ctx, f.ChargeID)
	if err != nil {
		mode := "test"
		if f.Livemode {
			mode = "live"
		}
		return in, fmt.Errorf("%s %s (%s mode): find the customer of charge %s: %w", f.EventType, f.EventID, mode, f.ChargeID, err)
	}
	in.IDs = append(in.IDs, Identifier{LinkStripeCustomer, cleanID(refs.CustomerID)},
		Identifier{LinkInvoice, cleanID(refs.InvoiceID)}, Identifier{LinkPaymentIntent, cleanID(refs.PaymentIntentID)})
	f.UnverifiedEmail = firstNonEmpty(f.UnverifiedEmail, cleanEmail(refs.BillingEmail))
	in.GuestCharge = refs.CustomerID == ""
	return in, nil
}

// noCustomer is Handle's answer to an event whose customer cannot be
// found (ErrUnknownCustomer): nothing to do if it names no object that
// belongs to a customer (a balance event, say), else unresolved's error.
func (s *Service) noCustomer(ctx context.Context, f Facts) error {
	if f.ChargeID == "" && f.InvoiceID == "" && f.SubscriptionID == "" {
		s.log.DebugContext(ctx, "event names no customer; nothing to do", "event_type", f.EventType)
		return nil
	}
	return unresolved(f, s.stripe != nil)
}

// domainEvents derives what the event publishes for its customer res.
// Domain events are facts with their occurred_at: a late one is still
// published (marked superseded), so every delivery order yields the same
// set of events, and subscribers apply the per-object version rule (newest
// occurred_at wins) to their own state. Staleness only keeps a late event
// from changing identity's own state (profile, object versions). A merge
// the event made is announced too.
func (s *Service) domainEvents(ctx context.Context, ev *stripe.Event, f Facts, res Resolution) ([]Outgoing, error) {
	outs, err := Derive(ev, f, Identity{
		CanonicalID: res.CanonicalID, StripeCustomerID: res.StripeCustomerID, Email: res.Email, Name: res.Name,
		StripeCustomerIDs: res.StripeCustomerIDs,
	}, false)
	if err != nil {
		return nil, errclass.Permanent(err)
	}
	if res.Stale {
		s.log.InfoContext(ctx, "stale event: a newer version of the object was applied", "event_type", f.EventType, "object_id", f.ObjectID)
		for _, o := range outs {
			if be, ok := o.Message.(subjects.BillingEvent); ok {
				be.GetMeta().Superseded = true
			}
		}
	}
	if s.products != nil {
		// Webhooks name a price's product by id only; its name comes from
		// the Stripe API (cached), or the plan goes out without it.
		s.products.nameProducts(ctx, outs)
	}
	if len(res.Merged) > 0 {
		outs = append(outs, mergeAnnouncement(f, res))
	}
	return outs, nil
}

// chargeOwners are the object kinds that say themselves whom their charge
// belongs to: a charge, and the payment intent that made it (a charge
// takes its customer and invoice from its payment intent).
var chargeOwners = map[string]bool{"charge": true, "payment_intent": true}

// unresolved is the error for an event whose customer identity cannot find
// (ErrUnknownCustomer). Its class says whether waiting can help:
//
//   - Transient when another event may still link what this one names:
//     events come in any order (and reconcile heals missed ones late), so a
//     dispute or refund naming only its charge resolves once the charge's
//     own event, which names the customer, is handled.
//   - Permanent when the event carries the charge (or its payment intent)
//     itself and it names no customer and no invoice, and there is no
//     Stripe API to ask: the charge's own events are this one, no other
//     event links it to a customer, and only Stripe can say it is a guest
//     payment (see Input.GuestCharge). No retry can find its customer; the
//     dead letter says to set STRIPE_API_KEY and replay.
//
// With the Stripe API the charge's customer has been asked for already
// (and resolution then always finds or founds one); an invoice or
// subscription named alone may still be linked by its own event.
func unresolved(f Facts, haveAPI bool) error {
	event := f.EventType + " " + f.EventID
	what := f.ObjectKind + " " + f.ObjectID
	if f.ChargeID == "" || haveAPI {
		var names []string
		for _, n := range [][2]string{{"invoice", f.InvoiceID}, {"subscription", f.SubscriptionID}, {"charge", f.ChargeID}, {"payment intent", f.PaymentIntentID}} {
			if n[1] != "" {
				names = append(names, n[0]+" "+n[1])
			}
		}
		return errclass.Transient(fmt.Errorf("%s: %s names %s, which no event has linked to a customer yet (retried in case that event comes late)",
			event, what, strings.Join(names, " and ")))
	}
	if chargeOwners[f.ObjectKind] && f.InvoiceID == "" && f.SubscriptionID == "" {
		whose := "its customer"
		if f.ObjectKind != "charge" {
			whose = "the customer of its charge " + f.ChargeID
		}
		return errclass.Permanent(fmt.Errorf("%s: %s names no customer and no invoice, so only the Stripe API can find %s (or show it is a guest payment), "+
			"and STRIPE_API_KEY is not set — set it (a restricted read key) and replay", event, what, whose))
	}
	return errclass.Transient(fmt.Errorf("%s: %s names charge %s, not yet linked to a customer (retried in case its event is late); "+
		"STRIPE_API_KEY is not set — set it so Stripe can be asked, or deliver the charge's event, and replay", event, what, f.ChargeID))
}

// publishAll publishes the event's domain events in order without waiting
// for each PubAck in turn (natsbus.PublishProtoAsync): they are stored in
// that order and their PubAcks travel back together. It returns only once
// every one is stored or has failed (the event is acked only after all its
// domain events are); the error is the first failure's.
func (s *Service) publishAll(ctx context.Context, outs []Outgoing) error {
	pending, err := s.send(ctx, outs)
	if err != nil {
		return err
	}
	return s.await(ctx, outs, pending)
}

// send sends outs, in order, without waiting for their PubAcks.
func (s *Service) send(ctx context.Context, outs []Outgoing) ([]natsbus.Pending, error) {
	pending := make([]natsbus.Pending, len(outs))
	for i, o := range outs {
		p, err := natsbus.PublishProtoAsync(ctx, s.js, o.Subject, o.MsgID, o.Message)
		if err != nil {
			return nil, err // those sent are stored or not; a redelivery sends them again under the same ids
		}
		pending[i] = p
	}
	return pending, nil
}

// await waits for the PubAcks of outs (sent by send), counting each domain
// event the first time JetStream stores it, and returns the first failure.
func (s *Service) await(ctx context.Context, outs []Outgoing, pending []natsbus.Pending) error {
	var failed error
	for i, p := range pending {
		first, err := p.Await(ctx)
		if err != nil {
			failed = cmp.Or(failed, err)
			continue
		}
		if first { // invoice.paid and invoice.payment_succeeded publish one payment once
			s.events.Add(ctx, 1, metric.WithAttributes(attribute.String("subject", outs[i].Subject)))
		}
	}
	return failed
}

// publish publishes one domain event and waits for its PubAck; it counts
// it only the first time JetStream stores it.
func (s *Service) publish(ctx context.Context, o Outgoing) error {
	first, err := natsbus.PublishProtoFirst(ctx, s.js, o.Subject, o.MsgID, o.Message)
	if err != nil {
		return err
	}
	if first { // invoice.paid and invoice.payment_succeeded publish one payment once
		s.events.Add(ctx, 1, metric.WithAttributes(attribute.String("subject", o.Subject)))
	}
	return nil
}

// mergeAnnouncement tells subscribers which canonical customers the event
// merged into res.CanonicalID. Its id is derived from the event, so a
// redelivery re-announces the same merge under the same id.
func mergeAnnouncement(f Facts, res Resolution) Outgoing {
	id := subjects.BillingCustomerUpserted + ":" + f.EventID + ":merged"
	return Outgoing{Subject: subjects.BillingCustomerUpserted, MsgID: id, Message: &billingv1.CustomerUpserted{
		Meta: &billingv1.EventMeta{
			EventId: id, CanonicalCustomerId: res.CanonicalID, SourceEventIds: []string{f.EventID},
			OccurredAt: timestamppb.New(f.Created), ReceivedAt: timestampOrNil(f.ReceivedAt), Livemode: f.Livemode,
			StripeCustomerId: res.StripeCustomerID, Email: res.Email,
		},
		Email: res.Email, Name: res.Name, StripeCustomerIds: res.StripeCustomerIDs, MergedCanonicalIds: res.Merged,
	}}
}

// identifiers lists what names the event's customer: the Stripe customer,
// the Stripe objects that belong to one (Stripe's own relations, so
// verified), and the Stripe Customer object's email. Facts.Email holds
// nothing else: an email a payer typed (UnverifiedEmail) never links.
func identifiers(f Facts) []Identifier {
	ids := []Identifier{
		{LinkStripeCustomer, f.StripeCustomerID}, {LinkEmail, f.Email},
		{LinkSubscription, f.SubscriptionID}, {LinkInvoice, f.InvoiceID}, {LinkCharge, f.ChargeID},
		{LinkPaymentIntent, f.PaymentIntentID},
	}
	switch f.ObjectKind {
	case "subscription":
		ids = append(ids, Identifier{LinkSubscription, f.ObjectID})
	case "invoice":
		ids = append(ids, Identifier{LinkInvoice, f.ObjectID})
	case "charge":
		ids = append(ids, Identifier{LinkCharge, f.ObjectID})
	}
	return ids
}
