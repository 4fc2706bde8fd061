package natsbus

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/proto/subjects"
)

// SubscriberStreams are the streams a subscriber outside the hub may read:
// the contracts of proto/. STRIPE is not one of them: it holds the raw
// webhook bodies, which only identity reads.
func SubscriberStreams() []string {
	return []string{StreamBilling, StreamCRM, StreamSupport, StreamDLQ}
}

// ErrInvalidSubscriber means a subscriber's name or streams cannot be given
// permissions: the name is not one subject token, or is taken by the hub, or
// a stream is not one a subscriber may read.
var ErrInvalidSubscriber = errors.New("natsbus: invalid subscriber")

// SubscriberPermissions returns what a subscriber outside the hub, logging
// in to NATS as name, needs to read its durable pull consumer named name on
// each of streams, and nothing more: that consumer's info, its next
// messages and their acks (both ack subject forms), and its own inboxes,
// InboxPrefix(name), where the replies and the pulled messages land. It may
// publish nothing else: no event, no dead letter, no other JetStream call.
//
// It may not create or change its consumer either: a client allowed to
// create a consumer may give it a push deliver subject, and the server then
// publishes the stream's messages there on its behalf, whatever that
// client may publish itself (into another stream, to a service's command
// subject). The operator creates the durable (`switchyard subscriber`,
// SubscriberDurable) as `switchyard migrate` creates the hub's own.
//
// The name must be one subject token that is neither a hub identity nor a
// durable of the catalogue (its inboxes would be theirs).
func SubscriberPermissions(name string, streams ...string) (Permission, error) {
	if err := validSubscriber(name, streams); err != nil {
		return Permission{}, err
	}
	p := Permission{Identity: name, Subscribe: []string{InboxPrefix(name) + ".>"}}
	for _, s := range streams {
		sd := s + "." + name
		p.Publish = append(p.Publish,
			jsAPI+"CONSUMER.INFO."+sd,
			jsAPI+"CONSUMER.MSG.NEXT."+sd,
			"$JS.ACK."+sd+".>",
			"$JS.ACK.*.*."+sd+".>",
		)
	}
	return p, nil
}

// SubscriberDurable is the durable pull consumer of a subscriber named
// name on stream, filtered to filter (empty: the whole stream), with the
// settings of the catalogue's own durables: explicit ack, AckWait 30 s,
// 1000 unacknowledged at most, never given up on by the server, delivered
// from the start of the stream (change DeliverPolicy in its Config before
// creating it to start elsewhere).
func SubscriberDurable(name, stream string, filter ...string) (Durable, error) {
	if err := validSubscriber(name, []string{stream}); err != nil {
		return Durable{}, err
	}
	return Durable{Name: name, Stream: stream, Subjects: filter, AckWait: DefaultAckWait, MaxAckPending: DefaultMaxAckPending}, nil
}

func validSubscriber(name string, streams []string) error {
	if !subjects.ValidToken(name) || strings.HasPrefix(name, "$") {
		return fmt.Errorf("%w: name %q is not one NATS subject token", ErrInvalidSubscriber, name)
	}
	hub := append(ConsumerNames(Options{}), IdentityGateway, IdentityIdentity, IdentityCRM, IdentitySupport,
		IdentityAlerts, IdentityProjector, IdentityOperator, IdentityMigrate)
	if slices.Contains(hub, name) {
		return fmt.Errorf("%w: %q is a NATS identity or durable consumer of the hub", ErrInvalidSubscriber, name)
	}
	if len(streams) == 0 {
		return fmt.Errorf("%w: no stream for %q", ErrInvalidSubscriber, name)
	}
	for _, s := range streams {
		if !slices.Contains(SubscriberStreams(), s) {
			return fmt.Errorf("%w: stream %q is not one a subscriber may read (%s)", ErrInvalidSubscriber, s, strings.Join(SubscriberStreams(), ", "))
		}
	}
	return nil
}
