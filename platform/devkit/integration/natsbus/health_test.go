package natsbus_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// TestWalkHealth: the walk reports every stream of the catalogue with its
// depth, every consumer with its backlog, the DLQ depth, and calls a
// consumer stalled only once its work has waited longer than stallAfter.
func TestWalkHealth(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	for _, id := range []string{"evt_walk1", "evt_walk2", "evt_walk3"} {
		if _, err := js.Publish(ctx, "stripe.events.invoice.paid", []byte(`{}`), jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "dlq.identity", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{}); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	h := natsbus.WalkHealth(ctx, js, now, time.Minute)
	var names []string
	for _, st := range h.Streams {
		names = append(names, st.Name)
		if !st.Present || st.Err != nil || st.ListErr != nil || st.Stream == nil {
			t.Errorf("stream %+v, want present and read", st)
		}
	}
	if !slices.Equal(names, natsbus.StreamNames()) {
		t.Errorf("streams %v, want the catalogue's %v", names, natsbus.StreamNames())
	}
	stripe := h.Stream(natsbus.StreamStripe)
	if stripe.Messages != 3 || stripe.Bytes == 0 || now.Sub(stripe.LastMessageAt) > time.Minute || stripe.LastMessageAt.Location() != time.UTC {
		t.Errorf("STRIPE %+v, want 3 messages, the newest just now (UTC)", stripe)
	}
	if !h.Stream(natsbus.StreamCRM).LastMessageAt.IsZero() {
		t.Error("an empty stream has a last message time")
	}
	if h.DLQDepth != 1 {
		t.Errorf("DLQDepth = %d, want 1", h.DLQDepth)
	}
	i := slices.IndexFunc(h.Consumers, func(c natsbus.ConsumerState) bool {
		return c.Stream == natsbus.StreamStripe && c.Name == natsbus.ConsumerIdentity
	})
	if i < 0 {
		t.Fatalf("identity's durable on STRIPE missing from %+v", h.Consumers)
	}
	identity := h.Consumers[i]
	if !identity.Durable || identity.Pending != 3 || identity.Waiting() != 3 || !identity.LastActive.IsZero() || identity.Stalled {
		t.Errorf("identity %+v, want durable, 3 pending, never active, not yet stalled", identity)
	}
	if !slices.ContainsFunc(h.Consumers, func(c natsbus.ConsumerState) bool { return c.Stream == natsbus.StreamBilling && !c.Durable }) {
		t.Errorf("the ordered consumer on BILLING is missing or durable: %+v", h.Consumers)
	}

	// An hour on, identity's work has waited since its creation: stalled.
	// Consumers with nothing waiting never are.
	later := natsbus.WalkHealth(ctx, js, now.Add(time.Hour), time.Minute)
	for _, c := range later.Consumers {
		if want := c.Waiting() > 0; c.Stalled != want {
			t.Errorf("an hour later %+v: stalled = %t, want %t", c, c.Stalled, want)
		}
	}
}

// TestWalkHealthMissingStream: a stream that cannot be read is reported
// with its error and the walk goes on to the others.
func TestWalkHealthMissingStream(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	if err := js.DeleteStream(ctx, natsbus.StreamDLQ); err != nil {
		t.Fatal(err)
	}
	h := natsbus.WalkHealth(ctx, js, time.Now(), time.Minute)
	dlq := h.Stream(natsbus.StreamDLQ)
	if dlq.Present || dlq.Err == nil || dlq.Stream != nil {
		t.Errorf("deleted DLQ %+v, want absent with an error", dlq)
	}
	if h.DLQDepth != 0 {
		t.Errorf("DLQDepth = %d without a DLQ, want 0", h.DLQDepth)
	}
	if !h.Stream(natsbus.StreamStripe).Present || len(h.Consumers) == 0 {
		t.Errorf("the walk stopped at the missing stream: %+v", h)
	}
	if slices.ContainsFunc(h.Consumers, func(c natsbus.ConsumerState) bool { return c.Stream == natsbus.StreamDLQ }) {
		t.Error("consumers reported on a stream that does not exist")
	}
	if got := natsbus.WalkHealth(context.Background(), js, time.Now(), time.Minute).Stream("NOPE"); got.Present || got.Name != "NOPE" {
		t.Errorf("Stream of a name not in the catalogue = %+v, want absent", got)
	}
}
