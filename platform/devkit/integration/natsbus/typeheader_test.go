package natsbus_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/wire"
)

// Every publish helper stores its message with the Switchyard-Type header
// (the proto full name) next to Nats-Msg-Id, so a subscriber can pick the
// decoder from the headers alone (proto/asyncapi.yaml).
func TestPublishHelpersSetTheTypeHeader(t *testing.T) {
	ctx := context.Background()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TYPES", Subjects: []string{"typetest.>"}})
	if err != nil {
		t.Fatal(err)
	}
	publishers := []struct {
		name    string
		publish func(subject, id string, m proto.Message) error
		m       proto.Message
		want    string
	}{
		{"PublishProto", func(subject, id string, m proto.Message) error {
			return natsbus.PublishProto(ctx, js, subject, id, m)
		}, &billingv1.PaymentFailed{FailureCode: "card_declined"}, "switchyard.billing.v1.PaymentFailed"},
		{"PublishProtoFirst", func(subject, id string, m proto.Message) error {
			_, err := natsbus.PublishProtoFirst(ctx, js, subject, id, m)
			return err
		}, &crmv1.ContactSynced{EventId: "e1"}, "switchyard.crm.v1.ContactSynced"},
		{"PublishProtoAsync", func(subject, id string, m proto.Message) error {
			p, err := natsbus.PublishProtoAsync(ctx, js, subject, id, m)
			if err != nil {
				return err
			}
			_, err = p.Await(ctx)
			return err
		}, &supportv1.TicketOpened{EventId: "e2"}, "switchyard.support.v1.TicketOpened"},
	}
	for i, p := range publishers {
		id := "type-" + p.name
		if err := p.publish("typetest."+p.name, id, p.m); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		stored, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatalf("%s: read back: %v", p.name, err)
		}
		if got := stored.Header.Get(wire.HeaderMsgID); got != id {
			t.Fatalf("%s: sequence %d has id %q, want %q", p.name, i+1, got, id)
		}
		if got := stored.Header.Values(wire.HeaderType); len(got) != 1 || got[0] != p.want {
			t.Errorf("%s: %s = %q, want exactly [%q]", p.name, wire.HeaderType, got, p.want)
		}
	}
}
