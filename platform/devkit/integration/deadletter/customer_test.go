package deadletter_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	dlqv1 "github.com/switchyard/switchyard/proto/gen/switchyard/dlq/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// The store's entries name their customer: the envelope's customer_id
// (a Stripe event names none in its data), else, for a dead letter written
// without it, the canonical id its billing event carries.
func TestEntriesNameTheirCustomer(t *testing.T) {
	ctx := context.Background()
	_, js := testkit.NATS(t).Connect(t)
	payment, err := proto.Marshal(&billingv1.PaymentFailed{Meta: &billingv1.EventMeta{EventId: "e1", CanonicalCustomerId: "cust_meta"}})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(subject string, data []byte, customerID string) uint64 {
		t.Helper()
		env, err := proto.Marshal(&dlqv1.DeadLetter{OriginalSubject: subject, OriginalData: data, Consumer: "identity",
			Reason: "failed", Attempts: 1, CustomerId: customerID})
		if err != nil {
			t.Fatal(err)
		}
		a, err := js.PublishMsg(ctx, &nats.Msg{Subject: "dlq.identity", Data: env, Header: nats.Header{}})
		if err != nil {
			t.Fatal(err)
		}
		return a.Sequence
	}
	want := map[uint64]string{
		publish("stripe.events.invoice.payment_failed", []byte(`{"id":"evt_1"}`), "cust_env"): "cust_env",
		publish(subjects.BillingPaymentFailed, payment, ""):                                   "cust_meta",
		publish("stripe.events.invoice.payment_failed", []byte(`{"id":"evt_2"}`), ""):         "",
	}
	store, err := deadletter.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	for seq, id := range want {
		e, err := store.Get(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if e.CustomerID != id {
			t.Errorf("Get(%d).CustomerID = %q, want %q", seq, e.CustomerID, id)
		}
	}
	list, err := store.List(ctx, deadletter.Filter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range list {
		seqs = append(seqs, e.Seq)
		if w, ok := want[e.Seq]; !ok || e.CustomerID != w {
			t.Errorf("List: dead letter %d: CustomerID = %q, want %q", e.Seq, e.CustomerID, w)
		}
	}
	if len(seqs) != len(want) || !slices.IsSorted(seqs) {
		t.Errorf("List returned sequences %v, want the %d published, oldest first", seqs, len(want))
	}
}
