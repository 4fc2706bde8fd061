package consumer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	dlqv1 "github.com/switchyard/switchyard/proto/gen/switchyard/dlq/v1"
	"github.com/switchyard/switchyard/proto/wire"
)

// Headers on dead letters and on replayed messages.
const (
	// HeaderErrorClass is the dead letter's class, readable without decoding.
	HeaderErrorClass = "Switchyard-Error-Class"
	// HeaderConsumer names the consumer that gave up.
	HeaderConsumer = "Switchyard-Consumer"
	// HeaderReplayOf marks a replayed message with the id of the original,
	// which consumers use as the message id, so the ledger recognises
	// effects the original already completed.
	HeaderReplayOf = "Switchyard-Replay-Of"
	// HeaderReplayFor names the one consumer a replay is for; every other
	// consumer of the subject acks it unhandled.
	HeaderReplayFor = "Switchyard-Replay-For"
)

// DeadLetter is a decoded dlq.<consumer> message.
type DeadLetter struct {
	Sequence        uint64 // in the DLQ stream (set by readers, not encoded)
	OriginalSubject string
	OriginalHeaders nats.Header
	OriginalData    []byte
	OriginalMsgID   string
	OriginalStream  string
	OriginalSeq     uint64
	Consumer        string
	Class           errclass.Class
	Reason          string
	Attempts        int
	FirstFailureAt  time.Time
	LastFailureAt   time.Time
}

// Encode returns the dlq.v1.DeadLetter protobuf encoding of d.
func (d *DeadLetter) Encode() ([]byte, error) {
	pb := &dlqv1.DeadLetter{
		OriginalSubject:        d.OriginalSubject,
		OriginalHeaders:        map[string]*dlqv1.HeaderValues{},
		OriginalData:           d.OriginalData,
		Consumer:               d.Consumer,
		ErrorClass:             d.Class.Proto(),
		Reason:                 d.Reason,
		Attempts:               uint32(d.Attempts),
		FirstFailureAt:         timestamppb.New(d.FirstFailureAt),
		LastFailureAt:          timestamppb.New(d.LastFailureAt),
		OriginalStream:         d.OriginalStream,
		OriginalStreamSequence: d.OriginalSeq,
	}
	for k, vs := range d.OriginalHeaders {
		pb.OriginalHeaders[k] = &dlqv1.HeaderValues{Values: vs}
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(pb)
}

// DecodeDeadLetter decodes a dlq.v1.DeadLetter.
func DecodeDeadLetter(data []byte) (*DeadLetter, error) {
	var pb dlqv1.DeadLetter
	if err := proto.Unmarshal(data, &pb); err != nil {
		return nil, fmt.Errorf("decode dead letter: %w", err)
	}
	d := &DeadLetter{
		OriginalSubject: pb.GetOriginalSubject(),
		OriginalHeaders: nats.Header{},
		OriginalData:    pb.GetOriginalData(),
		OriginalStream:  pb.GetOriginalStream(),
		OriginalSeq:     pb.GetOriginalStreamSequence(),
		Consumer:        pb.GetConsumer(),
		Reason:          pb.GetReason(),
		Attempts:        int(pb.GetAttempts()),
		FirstFailureAt:  pb.GetFirstFailureAt().AsTime(),
		LastFailureAt:   pb.GetLastFailureAt().AsTime(),
	}
	d.Class = errclass.FromProto(pb.GetErrorClass())
	for k, v := range pb.GetOriginalHeaders() {
		d.OriginalHeaders[k] = v.GetValues()
	}
	// A replayed message that failed again is known by its original's id.
	d.OriginalMsgID = d.OriginalHeaders.Get(HeaderReplayOf)
	if d.OriginalMsgID == "" {
		d.OriginalMsgID = d.OriginalHeaders.Get(wire.HeaderMsgID)
	}
	return d, nil
}

// deadLetter publishes m's dead letter and waits for it to be stored.
func (c *Consumer) deadLetter(ctx context.Context, m *Message, class errclass.Class, reason string, f ledger.Failure) error {
	d := &DeadLetter{
		OriginalSubject: m.Subject, OriginalHeaders: m.Header, OriginalData: m.Data,
		OriginalStream: m.Stream, OriginalSeq: m.Sequence,
		Consumer: c.cfg.Name, Class: class, Reason: reason, Attempts: f.Attempts,
		FirstFailureAt: f.FirstFailureAt, LastFailureAt: f.LastFailureAt,
	}
	data, err := d.Encode()
	if err != nil {
		return err
	}
	msg := &nats.Msg{
		Subject: c.DeadLetterSubject(),
		Data:    data,
		Header: nats.Header{
			// One dead letter per delivery of one stored message, however
			// often this runs.
			wire.HeaderMsgID: {"dlq:" + c.cfg.Name + ":" + m.Stream + ":" + strconv.FormatUint(m.Sequence, 10)},
			HeaderErrorClass: {class.String()},
			HeaderConsumer:   {c.cfg.Name},
		},
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(natsbus.StreamDLQ)); err != nil {
		return fmt.Errorf("publish dead letter to %s: %w", msg.Subject, err)
	}
	return nil
}
