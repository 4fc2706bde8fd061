package testkit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// TestSettled: a consumer has settled once it has acked the last message
// stored for its filters, whatever NumPending says at that instant; a
// message its filters do not match does not unsettle it.
func TestSettled(t *testing.T) {
	b := testkit.EmptyNATS(t)
	_, js := b.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
		t.Fatal(err)
	}
	settled := func(name string) bool {
		t.Helper()
		ok, err := testkit.Settled(ctx, js, "S", name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if settled("one") {
		t.Fatal("a consumer not created yet has settled")
	}
	one, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "one", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "s.a.>"})
	if err != nil {
		t.Fatal(err)
	}
	two, err := js.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "two", AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: []string{"s.b", "s.c"}})
	if err != nil {
		t.Fatal(err)
	}
	if !settled("one") || !settled("two") {
		t.Fatal("consumers of an empty stream have not settled")
	}

	// Checked at once after each PubAck: the server may not have counted
	// the message for the consumer yet, the stream has stored it.
	for _, subj := range []string{"s.a.1", "s.b", "s.c", "s.a.2"} {
		if _, err := js.Publish(ctx, subj, nil); err != nil {
			t.Fatal(err)
		}
		if name := map[byte]string{'a': "one", 'b': "two", 'c': "two"}[subj[2]]; settled(name) {
			t.Fatalf("%s settled right after a message on %s was stored", name, subj)
		}
	}
	busy, err := testkit.Busy(ctx, js, "S")
	if err != nil {
		t.Fatal(err)
	}
	if len(busy) != 2 || !strings.HasPrefix(busy[0], "S/one ") || !strings.HasPrefix(busy[1], "S/two ") {
		t.Fatalf("busy %q, want S/one and S/two", busy)
	}

	ackAll := func(c jetstream.Consumer, n int) {
		t.Helper()
		batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			got++
		}
		if got != n {
			t.Fatalf("fetched %d, want %d", got, n)
		}
	}
	ackAll(one, 1)
	if settled("one") {
		t.Fatal("one settled with s.a.2 unacked")
	}
	ackAll(one, 1)
	ackAll(two, 2)
	if !settled("one") || !settled("two") {
		t.Fatal("not settled after every message was acked")
	}
	if _, err := js.Publish(ctx, "s.d", nil); err != nil {
		t.Fatal(err)
	}
	if !settled("one") || !settled("two") {
		t.Fatal("a message no filter matches unsettled a consumer")
	}
	if busy, err := testkit.Busy(ctx, js, "S"); err != nil || len(busy) != 0 {
		t.Fatalf("busy %q (%v), want none", busy, err)
	}
}
