package deadletter

import (
	"errors"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/proto/subjects"
)

// A dead letter names its customer in the envelope (dlq.v1
// DeadLetter.customer_id), set by the consumer that gave up from what its
// service knew: the canonical id a billing event or an outcome carries
// (CustomerOf), or the one a handler learnt while handling and attached to
// its error (WithCustomer: identity, after resolving a Stripe event).
// Customer is that rule as one function, for the consumer framework to
// call when it writes a dead letter. Readers take Entry.CustomerID, which
// falls back to CustomerOf for dead letters written without the field.

// customerFieldNumber is dlq.v1 DeadLetter.customer_id.
const customerFieldNumber = 12

// CustomerOf returns the canonical customer id a message names: a billing
// event's EventMeta.canonical_customer_id, a crm or support outcome's
// canonical_customer_id. It returns "" for a message that names none (a
// raw Stripe event, which identity has not resolved yet) or that does not
// decode (an unknown subject, data that is not the subject's type, a
// truncated copy).
func CustomerOf(subject string, data []byte) string {
	m, err := subjects.Decode(subject, data)
	if err != nil {
		return ""
	}
	switch ev := m.(type) {
	case subjects.BillingEvent:
		return ev.GetMeta().GetCanonicalCustomerId()
	case interface{ GetCanonicalCustomerId() string }:
		return ev.GetCanonicalCustomerId()
	}
	return ""
}

// customerError is an error that knows its message's customer.
type customerError struct {
	err error
	id  string
}

func (e *customerError) Error() string { return e.err.Error() }
func (e *customerError) Unwrap() error { return e.err }

// WithCustomer returns err annotated with the canonical id of the customer
// its message is about, for a handler that learns the customer while
// handling (identity resolves a Stripe event to one): should the message
// be dead-lettered, the envelope names that customer. The annotation
// changes neither err's text nor its class (errors.Is and errors.As see
// through it). A nil err or an empty id returns err unchanged.
func WithCustomer(err error, customerID string) error {
	if err == nil || customerID == "" {
		return err
	}
	return &customerError{err: err, id: customerID}
}

// Customer returns the canonical id of the customer of a message its
// handler failed on with err: the id err was annotated with
// (WithCustomer; the outermost wins), else the one the message names
// (CustomerOf), else "". It is the rule the consumer framework applies to
// fill a dead letter's customer_id.
func Customer(m *consumer.Message, err error) string {
	var ce *customerError
	if errors.As(err, &ce) {
		return ce.id
	}
	if m == nil {
		return ""
	}
	return CustomerOf(m.Subject, m.Data)
}

// Decode decodes a dead letter as stored (headers h, envelope data; see
// consumer.DecodeDeadLetterMsg) into an Entry with its CustomerID. Seq is
// left 0: the caller knows it.
func Decode(h nats.Header, data []byte) (Entry, error) {
	d, err := consumer.DecodeDeadLetterMsg(h, data)
	if err != nil {
		return Entry{}, err
	}
	return entry(0, d, data), nil
}

// entry makes the Entry of dead letter d, whose envelope is data: its
// customer is the envelope's customer_id, else the one its message names
// (dead letters written before the field existed, or by a consumer that
// did not know it).
func entry(seq uint64, d *consumer.DeadLetter, data []byte) Entry {
	d.Sequence = seq
	id := envelopeCustomer(data)
	if id == "" {
		// A truncated copy decodes only when cut at a field boundary, and
		// then its EventMeta (field 1) is whole.
		id = CustomerOf(d.OriginalSubject, d.OriginalData)
	}
	return Entry{Seq: seq, DeadLetter: d, CustomerID: id}
}

// envelopeCustomer returns the customer_id field of an encoded dlq.v1
// DeadLetter ("" when absent or malformed). It reads the one field from
// the wire rather than decoding the whole envelope a second time.
func envelopeCustomer(data []byte) string {
	var id string
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return ""
		}
		data = data[n:]
		if num == customerFieldNumber && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(data)
			if m < 0 {
				return ""
			}
			id, data = string(v), data[m:] // the last occurrence wins, as in proto
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, data)
		if m < 0 {
			return ""
		}
		data = data[m:]
	}
	return id
}
