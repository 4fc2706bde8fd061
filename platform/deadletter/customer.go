package deadletter

import (
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchyard/switchyard/platform/consumer"
	dlqv1 "github.com/switchyard/switchyard/proto/gen/switchyard/dlq/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// A dead letter names its customer in the envelope (dlq.v1
// DeadLetter.customer_id): the canonical id the handler set as
// consumer.Message.Customer once it knew it (identity after resolving a
// Stripe event; crm, support and alerts from the billing event's or the
// outcome's canonical id), written by the consumer framework with the
// dead letter. Readers take Entry.CustomerID, which falls back to the id
// the message itself names (CustomerOf) for a dead letter written without
// the field.

// customerFieldNumber is dlq.v1 DeadLetter.customer_id's.
var customerFieldNumber = (&dlqv1.DeadLetter{}).ProtoReflect().Descriptor().Fields().ByName("customer_id").Number()

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
