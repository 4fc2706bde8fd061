package testkit

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/natsbus"
)

// Settled reports whether the durable consumer name on stream has settled
// every message stored for it so far: nothing pending, nothing awaiting an
// ack, and its ack floor at or past the last stored message its filter
// matches. A consumer not created yet has not settled.
//
// NumPending alone is not enough: the server counts a new message for a
// consumer asynchronously, after it has given the publisher its PubAck, so
// just after a publish a consumer can read nothing pending with the message
// not delivered yet. The last stored message is read from the stream itself:
// from its leader, as natsbus's streams allow no direct gets (a lagging
// follower answering one could make a consumer look settled too early).
func Settled(ctx context.Context, js jetstream.JetStream, stream, name string) (bool, error) {
	c, err := js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return false, err
	}
	busy, err := unsettled(ctx, s, info)
	return busy == "", err
}

// Busy lists the durable consumers of the streams (every stream of natsbus's
// catalogue when none is named) that have not settled (see Settled), each
// as "stream/consumer" and what it still has: pending and awaiting-ack
// counts, or an ack floor short of the last message stored for it.
func Busy(ctx context.Context, js jetstream.JetStream, streams ...string) ([]string, error) {
	if len(streams) == 0 {
		streams = natsbus.StreamNames()
	}
	var busy []string
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		l := s.ListConsumers(ctx)
		for info := range l.Info() {
			if info.Config.Durable == "" {
				continue
			}
			what, err := unsettled(ctx, s, info)
			if err != nil {
				return nil, err
			}
			if what != "" {
				busy = append(busy, name+"/"+info.Name+" "+what)
			}
		}
		if err := l.Err(); err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return busy, nil
}

// unsettled says what the consumer still has to do, "" when nothing.
func unsettled(ctx context.Context, s jetstream.Stream, info *jetstream.ConsumerInfo) (string, error) {
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return fmt.Sprintf("%d pending, %d awaiting ack", info.NumPending, info.NumAckPending), nil
	}
	filters := info.Config.FilterSubjects
	switch {
	case info.Config.FilterSubject != "":
		filters = []string{info.Config.FilterSubject}
	case len(filters) == 0:
		filters = []string{">"}
	}
	for _, f := range filters {
		last, err := s.GetLastMsgForSubject(ctx, f)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("last message on %s: %w", f, err)
		}
		if info.AckFloor.Stream < last.Sequence {
			return fmt.Sprintf("ack floor %d short of the last message on %s, %d", info.AckFloor.Stream, f, last.Sequence), nil
		}
	}
	return "", nil
}
