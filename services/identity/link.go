package identity

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"

	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/platform/opscmd"
	"github.com/switchyard/switchyard/platform/sinktext"
)

// Linking an unlinked payer. A charge or dispute that names no Stripe
// customer founds a record of its own, linked to no one (a guest payment):
// the email its payer typed is no one's identity. When an operator has
// checked who paid, one command (opscmd.Link, from the console or the
// status API, audited there) merges that record into the customer: its
// links (charge, payment intent) move, so later events of the charge
// resolve to the customer, and a customer.upserted naming the merged record
// tells subscribers (the projector moves the timeline).

// Errors of LinkGuest; the command's reply carries them as codes.
var (
	ErrNoSuchRecord   = errors.New("no such customer record")
	ErrNotGuest       = errors.New("the record has a Stripe customer, so it is not an unlinked payer's")
	ErrMergedElsewere = errors.New("the record was merged into another customer already")
)

// LinkGuest merges the guest record into customer (its surviving record)
// for the operator's command commandID, in one transaction. Linking again
// to the same customer changes nothing and reports already.
func (s *Store) LinkGuest(ctx context.Context, guest, customer, commandID string) (res Resolution, already bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if guest == customer {
		return res, false, fmt.Errorf("%w: a record cannot be linked to itself", ErrNotGuest)
	}
	// Lock both rows in id order (as resolutions do), then the
	// customer's root.
	var guestInto *string
	for _, id := range []string{min(guest, customer), max(guest, customer)} {
		var into *string
		err := tx.QueryRow(ctx, `SELECT merged_into FROM customers WHERE canonical_id = $1 FOR UPDATE`, id).Scan(&into)
		if errors.Is(err, pgx.ErrNoRows) {
			return res, false, fmt.Errorf("%w: %s", ErrNoSuchRecord, id)
		}
		if err != nil {
			return res, false, fmt.Errorf("lock %s: %w", id, err)
		}
		if id == guest {
			guestInto = into
		}
	}
	root, err := lockRoot(ctx, tx, customer)
	if err != nil {
		return res, false, err
	}
	res.CanonicalID = root
	switch {
	case guestInto != nil && *guestInto == root:
		already = true
	case guestInto != nil:
		return res, false, fmt.Errorf("%w (%s)", ErrMergedElsewere, *guestInto)
	default:
		var stripeLinked bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM customer_links WHERE canonical_id = $1 AND kind = $2)`,
			guest, LinkStripeCustomer).Scan(&stripeLinked); err != nil {
			return res, false, fmt.Errorf("stripe links of %s: %w", guest, err)
		}
		if stripeLinked {
			return res, false, ErrNotGuest
		}
		if err := merge(ctx, tx, guest, root, commandID); err != nil {
			return res, false, err
		}
	}
	if err := tx.QueryRow(ctx, `SELECT email, name FROM customers WHERE canonical_id = $1`, root).Scan(&res.Email, &res.Name); err != nil {
		return res, false, fmt.Errorf("read profile: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT value FROM customer_links WHERE canonical_id = $1 AND kind = $2 ORDER BY value COLLATE "C"`, root, LinkStripeCustomer)
	if err != nil {
		return res, false, fmt.Errorf("read stripe customers: %w", err)
	}
	if res.StripeCustomerIDs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return res, false, fmt.Errorf("read stripe customers: %w", err)
	}
	if len(res.StripeCustomerIDs) > 0 {
		res.StripeCustomerID = res.StripeCustomerIDs[0]
	}
	res.Merged = []string{guest}
	return res, already, tx.Commit(ctx)
}

// ServeLinks answers the operator's link commands on nc until ctx ends
// (one queue group across replicas). With keys, a command no operator key
// signed is refused; without (development), the NATS permissions are the
// only guard: only the operator identity may publish the command subject.
func (s *Service) ServeLinks(ctx context.Context, nc *nats.Conn, keys []ed25519.PublicKey) error {
	sub, err := nc.QueueSubscribe(wire.OpsLinkCustomer, "identity", func(m *nats.Msg) {
		reply := s.handleLink(ctx, m, keys)
		b, _ := json.Marshal(reply)
		if m.Reply != "" {
			if err := m.Respond(b); err != nil {
				s.log.WarnContext(ctx, "link command: reply not sent", "error", err)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", wire.OpsLinkCustomer, err)
	}
	<-ctx.Done()
	return sub.Drain()
}

func (s *Service) handleLink(ctx context.Context, m *nats.Msg, keys []ed25519.PublicKey) opscmd.LinkReply {
	refuse := func(code, msg string) opscmd.LinkReply { return opscmd.LinkReply{Code: code, Error: msg} }
	if len(keys) > 0 {
		if err := opsauth.VerifyCommand(keys, m.Subject, m.Data, m.Header.Get(wire.HeaderOperatorSig)); err != nil {
			s.log.WarnContext(ctx, "link command refused: not signed by an operator key", "error", err)
			return refuse(opscmd.CodeUnverified, err.Error())
		}
	}
	var l opscmd.Link
	if err := json.Unmarshal(m.Data, &l); err != nil {
		return refuse(opscmd.CodeInvalid, "the command is not a link: "+err.Error())
	}
	for _, f := range []struct{ name, v string }{{"request_id", l.RequestID}, {"guest_id", l.GuestID}, {"customer_id", l.CustomerID}} {
		if f.v == "" || len(f.v) > 128 || sinktext.Line(f.v) != f.v {
			return refuse(opscmd.CodeInvalid, f.name+" is required: up to 128 printable characters")
		}
	}
	res, already, err := s.store.LinkGuest(ctx, l.GuestID, l.CustomerID, "operator-link:"+l.RequestID)
	switch {
	case errors.Is(err, ErrNoSuchRecord):
		return refuse(opscmd.CodeNotFound, err.Error())
	case errors.Is(err, ErrNotGuest):
		return refuse(opscmd.CodeNotUnlinked, err.Error()+"; two customers with Stripe customers are never merged")
	case errors.Is(err, ErrMergedElsewere):
		return refuse(opscmd.CodeMerged, err.Error())
	case err != nil:
		s.log.ErrorContext(ctx, "link command failed", "guest_id", l.GuestID, "customer_id", l.CustomerID, "error", err)
		return refuse(opscmd.CodeInternal, "identity could not link the record; see its log")
	}
	// Announced under an id of the pair, so a repeated command (or one
	// whose reply was lost) re-announces the same merge, dropped as a
	// duplicate within JetStream's window and harmless after it.
	if err := s.publish(ctx, linkAnnouncement(l.GuestID, res)); err != nil {
		s.log.ErrorContext(ctx, "link made but not announced; repeat the command", "guest_id", l.GuestID, "customer_id", res.CanonicalID, "error", err)
		return refuse(opscmd.CodeInternal, "linked, but the announcement was not published: repeat the command")
	}
	s.log.InfoContext(ctx, "unlinked payer linked by an operator", "actor", l.Actor, "guest_id", l.GuestID, "customer_id", res.CanonicalID, "already", already)
	return opscmd.LinkReply{CustomerID: res.CanonicalID, Already: already}
}

func linkAnnouncement(guest string, res Resolution) Outgoing {
	id := subjects.BillingCustomerUpserted + ":operator-link:" + guest + ":" + res.CanonicalID
	now := timestamppb.New(time.Now())
	return Outgoing{Subject: subjects.BillingCustomerUpserted, MsgID: id, Message: &billingv1.CustomerUpserted{
		Meta: &billingv1.EventMeta{
			EventId: id, CanonicalCustomerId: res.CanonicalID, OccurredAt: now, ReceivedAt: now,
			StripeCustomerId: res.StripeCustomerID, Email: res.Email,
		},
		Email: res.Email, Name: res.Name, StripeCustomerIds: res.StripeCustomerIDs, MergedCanonicalIds: res.Merged,
	}}
}
