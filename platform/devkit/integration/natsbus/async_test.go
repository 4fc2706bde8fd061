package natsbus_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/wire"
)

// PublishProtoAsync stores messages in the order they were sent, and Await
// says which publish stored each: a second send of an id is a duplicate.
func TestPublishProtoAsyncKeepsOrderAndTellsDuplicates(t *testing.T) {
	ctx := context.Background()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ASYNC", Subjects: []string{"asynctest.>"}}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var pending []natsbus.Pending
	for i := range n {
		id := fmt.Sprintf("m-%02d", i%40) // the last 10 repeat ids 0–9
		p, err := natsbus.PublishProtoAsync(ctx, js, "asynctest.one", id, &billingv1.CustomerUpserted{Email: id})
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	for i, p := range pending {
		first, err := p.Await(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 40; first != want {
			t.Errorf("message %d: first = %v, want %v", i, first, want)
		}
	}
	s, err := js.Stream(ctx, "ASYNC")
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 40; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var got billingv1.CustomerUpserted
		if err := proto.Unmarshal(m.Data, &got); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("m-%02d", seq-1); got.GetEmail() != want || m.Header.Get(wire.HeaderMsgID) != want {
			t.Fatalf("sequence %d holds %s (id %s), want %s: not in the order sent", seq, got.GetEmail(), m.Header.Get(wire.HeaderMsgID), want)
		}
	}
}
