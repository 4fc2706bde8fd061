package natsbus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Health is the catalogue's streams and their consumers as the server
// reported them at one moment: the one walk behind the gateway's
// webhook-health and the operator's overview.
type Health struct {
	Streams   []StreamState   // every stream of StreamNames, in that order
	Consumers []ConsumerState // stream by stream, each as the server lists them
	DLQDepth  uint64          // messages in StreamDLQ: dead letters waiting
}

// StreamState is one stream's state.
type StreamState struct {
	Name          string
	Present       bool             // the stream answered; when false, Err says why
	Err           error            // the stream could not be read
	ListErr       error            // listing its consumers failed part-way: Consumers may lack some
	Messages      uint64           // stored now
	Bytes         uint64           // stored now
	LastMessageAt time.Time        // newest message, zero when the stream is empty
	Stream        jetstream.Stream // for further reads; nil unless Present
}

// ConsumerState is one consumer's progress.
type ConsumerState struct {
	Stream      string
	Name        string
	Durable     bool // false for an ordered (ephemeral) consumer a reader created
	Pending     uint64
	AckPending  int
	Redelivered int
	Created     time.Time
	LastActive  time.Time // latest delivery or ack, zero if none yet
	Stalled     bool      // see WalkHealth
}

// Waiting is the consumer's work not yet done: stored but not delivered,
// and delivered but not acked.
func (c ConsumerState) Waiting() uint64 { return c.Pending + uint64(c.AckPending) }

// Stream returns the state of the stream called name; zero (not Present)
// if h has none.
func (h Health) Stream(name string) StreamState {
	for _, s := range h.Streams {
		if s.Name == name {
			return s
		}
	}
	return StreamState{Name: name}
}

// WalkHealth asks the server about every stream of the catalogue and every
// consumer on it, and never fails as a whole: a stream that cannot be read
// is reported with its error and the walk goes on. A consumer is Stalled
// when it has work Waiting and nothing was delivered or acked for longer
// than stallAfter before now (a consumer that never ran counts from its
// creation). It costs one stream-info request per stream and one consumer
// list per stream; callers serving it to many pollers should cache it.
func WalkHealth(ctx context.Context, js jetstream.JetStream, now time.Time, stallAfter time.Duration) Health {
	var h Health
	for _, name := range StreamNames() {
		st := readStream(ctx, js, name)
		h.Streams = append(h.Streams, st)
		if !st.Present {
			continue
		}
		if name == StreamDLQ {
			h.DLQDepth = st.Messages
		}
		consumers := st.Stream.ListConsumers(ctx)
		for ci := range consumers.Info() {
			h.Consumers = append(h.Consumers, consumerState(name, ci, now, stallAfter))
		}
		h.Streams[len(h.Streams)-1].ListErr = consumers.Err()
	}
	return h
}

// readStream looks name up; the lookup carries the stream's info, so one
// request gives both.
func readStream(ctx context.Context, js jetstream.JetStream, name string) StreamState {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return StreamState{Name: name, Err: err}
	}
	state := s.CachedInfo().State
	st := StreamState{Name: name, Present: true, Messages: state.Msgs, Bytes: state.Bytes, Stream: s}
	if state.Msgs > 0 {
		st.LastMessageAt = state.LastTime.UTC()
	}
	return st
}

func consumerState(stream string, ci *jetstream.ConsumerInfo, now time.Time, stallAfter time.Duration) ConsumerState {
	c := ConsumerState{
		Stream: stream, Name: ci.Name, Durable: ci.Config.Durable != "",
		Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered,
		Created: ci.Created, LastActive: lastActivity(ci),
	}
	since := c.LastActive
	if since.IsZero() {
		since = c.Created
	}
	c.Stalled = c.Waiting() > 0 && now.Sub(since) > stallAfter
	return c
}

// lastActivity is the consumer's latest delivery or ack, zero if none yet.
func lastActivity(ci *jetstream.ConsumerInfo) time.Time {
	var last time.Time
	for _, t := range []*time.Time{ci.Delivered.Last, ci.AckFloor.Last} {
		if t != nil && t.After(last) {
			last = t.UTC()
		}
	}
	return last
}
