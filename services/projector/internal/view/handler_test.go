package view_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// TestHandlerNamesCustomer: the live handler sets each message's Customer
// once it has read the canonical id, so a dead letter of the projector
// carries its customer; a message it cannot read names none.
func TestHandlerNamesCustomer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Projection(ctx, pool); err != nil {
		t.Fatal(err)
	}
	handle := view.Handler(view.NewStore(pool, view.Schema))

	ev := &billingv1.CustomerUpserted{Meta: &billingv1.EventMeta{EventId: "billing.customer.upserted:evt_1", CanonicalCustomerId: "cust_1",
		SourceEventIds: []string{"evt_1"}}, Email: "ada@example.com"}
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	good := &consumer.Message{Subject: subjects.BillingCustomerUpserted, Data: data}
	if err := handle(ctx, []*consumer.Message{good}); err != nil {
		t.Fatalf("handle: %v", err)
	}
	if got, want := good.Customer, "cust_1"; got != want {
		t.Errorf("Customer = %q, want %q", got, want)
	}

	bad := &consumer.Message{Subject: subjects.BillingCustomerUpserted, Data: []byte{0xff, 0xff}}
	if err := handle(ctx, []*consumer.Message{bad}); errclass.Of(err) != errclass.ClassPermanent {
		t.Fatalf("handle of undecodable data: %v, want a permanent error", err)
	}
	if bad.Customer != "" {
		t.Errorf("Customer of undecodable data = %q, want none", bad.Customer)
	}
}
