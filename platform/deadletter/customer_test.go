package deadletter_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/errclass"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	dlqv1 "github.com/switchyard/switchyard/proto/gen/switchyard/dlq/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCustomerOf(t *testing.T) {
	t.Parallel()
	payment := marshal(t, &billingv1.PaymentFailed{Meta: &billingv1.EventMeta{EventId: "e1", CanonicalCustomerId: "cust_ada"}})
	synced := marshal(t, &crmv1.ContactSynced{EventId: "o1", CanonicalCustomerId: "cust_bob"})
	tests := []struct {
		name, subject string
		data          []byte
		want          string
	}{
		{"billing event", subjects.BillingPaymentFailed, payment, "cust_ada"},
		{"outcome", subjects.CRMContactSynced, synced, "cust_bob"},
		{"billing event without a customer yet", subjects.BillingPaymentFailed, marshal(t, &billingv1.PaymentFailed{}), ""},
		{"raw Stripe event", "stripe.events.invoice.paid", []byte(`{"id":"evt_1","data":{"object":{"customer":"cus_1"}}}`), ""},
		{"unknown subject", "other.subject", payment, ""},
		{"data that does not decode", subjects.BillingPaymentFailed, []byte{0xff, 0xff, 0xff}, ""},
	}
	for _, tt := range tests {
		if got := deadletter.CustomerOf(tt.subject, tt.data); got != tt.want {
			t.Errorf("%s: CustomerOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// Decode takes the customer from the envelope's customer_id, else from the
// message (dead letters written before the field existed).
func TestDecodeCustomerID(t *testing.T) {
	t.Parallel()
	payment := marshal(t, &billingv1.PaymentFailed{Meta: &billingv1.EventMeta{EventId: "e1", CanonicalCustomerId: "cust_meta"}})
	envelope := func(subject string, data []byte, customerID string) []byte {
		return marshal(t, &dlqv1.DeadLetter{OriginalSubject: subject, OriginalData: data, Consumer: "crm", Reason: "r",
			OriginalHeaders: map[string]*dlqv1.HeaderValues{"Nats-Msg-Id": {Values: []string{"e1"}}}, CustomerId: customerID,
			OriginalStream: "BILLING", OriginalStreamSequence: 7})
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"envelope's field", envelope("stripe.events.invoice.paid", []byte(`{}`), "cust_env"), "cust_env"},
		{"envelope's field over the message's", envelope(subjects.BillingPaymentFailed, payment, "cust_env"), "cust_env"},
		{"the message's, for an envelope without the field", envelope(subjects.BillingPaymentFailed, payment, ""), "cust_meta"},
		{"neither", envelope("stripe.events.invoice.paid", []byte(`{}`), ""), ""},
	}
	for _, tt := range tests {
		e, err := deadletter.Decode(nats.Header{}, tt.data)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if e.CustomerID != tt.want {
			t.Errorf("%s: CustomerID = %q, want %q", tt.name, e.CustomerID, tt.want)
		}
		if e.Consumer != "crm" || e.OriginalMsgID != "e1" || e.OriginalSeq != 7 {
			t.Errorf("%s: decoded %+v", tt.name, e.DeadLetter)
		}
	}
	if _, err := deadletter.Decode(nats.Header{}, []byte{0xff}); err == nil {
		t.Error("Decode of garbage: no error")
	}
}

// A dead letter the consumer framework writes today (without customer_id)
// still names its customer through its message.
func TestDecodeFrameworkEnvelope(t *testing.T) {
	t.Parallel()
	d := &consumer.DeadLetter{OriginalSubject: subjects.CRMContactSynced, OriginalHeaders: nats.Header{},
		OriginalData: marshal(t, &crmv1.ContactSynced{EventId: "o1", CanonicalCustomerId: "cust_bob"}),
		Consumer:     "projector", Class: errclass.ClassPermanent, Attempts: 1, FirstFailureAt: time.Now(), LastFailureAt: time.Now()}
	data, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	e, err := deadletter.Decode(nats.Header{}, data)
	if err != nil {
		t.Fatal(err)
	}
	if e.CustomerID != "cust_bob" {
		t.Errorf("CustomerID = %q, want cust_bob", e.CustomerID)
	}
}
