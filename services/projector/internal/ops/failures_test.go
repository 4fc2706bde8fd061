package ops

import (
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

func TestClueOf(t *testing.T) {
	t.Parallel()
	stripe := func(name string) *consumer.DeadLetter {
		return &consumer.DeadLetter{OriginalSubject: wire.StripeEventSubject(name), OriginalData: testkit.StripeEvent(t, name)}
	}
	domain := func(m proto.Message) *consumer.DeadLetter {
		subj, err := subjects.Of(m)
		if err != nil {
			t.Fatal(err)
		}
		data, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return &consumer.DeadLetter{OriginalSubject: subj, OriginalData: data}
	}
	const cus = "cus_OnMHOpJU2HN6Xv"
	for _, tt := range []struct {
		name string
		d    *consumer.DeadLetter
		want customerClue
	}{
		{"an invoice names its customer", stripe("invoice.payment_failed"), customerClue{StripeEventID: "evt_1O5WElGgdF1VjufL5i2gHzqM", StripeID: cus}},
		{"a subscription names its customer", stripe("customer.subscription.deleted"), customerClue{StripeEventID: "evt_1O5t6lGgdF1VjufLjgXyjiqn", StripeID: cus}},
		{"a customer event is about its object", stripe("customer.created"), customerClue{StripeEventID: "evt_1O59vsGgdF1VjufLNnhVwvTi", StripeID: cus}},
		{"a dispute names none: its event id is the clue", stripe("charge.dispute.created"), customerClue{StripeEventID: "evt_1O5n8TGgdF1VjufLqXAtUdXB"}},
		{"a charge without a customer", stripe("charge.refunded"), customerClue{StripeEventID: "evt_1O56anGgdF1VjufLFh020xRN"}},
		{"a guest checkout", stripe("checkout.session.completed"), customerClue{StripeEventID: "evt_1O5LCwGgdF1VjufLd5fxf3aH"}},
		{"an expanded customer", &consumer.DeadLetter{OriginalSubject: "stripe.events.invoice.paid",
			OriginalData: []byte(`{"id":"evt_X","data":{"object":{"object":"invoice","customer":{"id":"cus_X","object":"customer"}}}}`)},
			customerClue{StripeEventID: "evt_X", StripeID: "cus_X"}},
		{"unreadable bytes: the message id is the event id", &consumer.DeadLetter{OriginalSubject: "stripe.events.invoice.paid", OriginalData: []byte("{not json"),
			OriginalMsgID: "evt_Y", OriginalHeaders: nats.Header{wire.HeaderMsgID: {"evt_Y"}}}, customerClue{StripeEventID: "evt_Y"}},
		{"a domain event", domain(&billingv1.PaymentFailed{Meta: &billingv1.EventMeta{EventId: "billing.payment.failed:in_1:1", CanonicalCustomerId: "cust_1",
			StripeCustomerId: "cus_1", SourceEventIds: []string{"evt_1"}}}), customerClue{StripeEventID: "evt_1", StripeID: "cus_1"}},
		{"a CRM outcome", domain(&crmv1.ContactFailed{EventId: "x", CanonicalCustomerId: "cust_2", SourceEventId: "billing.customer.upserted:evt_2"}),
			customerClue{SourceEventID: "billing.customer.upserted:evt_2"}},
		{"a support outcome without a customer", domain(&supportv1.TicketFailed{EventId: "y", SourceEventId: "billing.refund.issued:re_3"}),
			customerClue{SourceEventID: "billing.refund.issued:re_3"}},
		{"bytes that are no event", &consumer.DeadLetter{OriginalSubject: "billing.payment.failed", OriginalData: []byte{0xff, 0xff}}, customerClue{}},
		{"an unknown subject", &consumer.DeadLetter{OriginalSubject: "elsewhere.thing", OriginalData: []byte("{}")}, customerClue{}},
	} {
		if got := clueOf(tt.d); got != tt.want {
			t.Errorf("%s: clueOf = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
