package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
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

	// HeaderOriginalSize and HeaderOriginalSHA256, on every dead letter,
	// are the original data's length in bytes and its hex SHA-256.
	HeaderOriginalSize   = "Switchyard-Original-Size"
	HeaderOriginalSHA256 = "Switchyard-Original-Sha256"
	// HeaderTruncated ("<kept>/<size>" bytes) marks a dead letter whose
	// original data is cut: the whole envelope would have exceeded the NATS
	// server's max_payload. The whole message is in its stream, at
	// OriginalStream #OriginalSeq, and HeaderOriginalSHA256 identifies it.
	HeaderTruncated = "Switchyard-Original-Truncated"
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
	CustomerID      string // the canonical customer the consumer knew (Message.Customer); "" if none
	FirstFailureAt  time.Time
	LastFailureAt   time.Time

	// What the dead letter's headers say about the original data (set by
	// DecodeDeadLetterMsg, not encoded in the envelope): its length, its
	// hex SHA-256, and whether OriginalData holds only its first bytes.
	// Replaying a truncated dead letter must fetch the whole message from
	// OriginalStream at OriginalSeq, never republish OriginalData.
	OriginalSize   int
	OriginalSHA256 string
	Truncated      bool
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
		CustomerId:             d.CustomerID,
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
		CustomerID:      pb.GetCustomerId(),
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

// DecodeDeadLetterMsg decodes a dead letter as stored, with what its
// headers say about the original data (OriginalSize, OriginalSHA256,
// Truncated). Readers that may replay must use it: a truncated dead letter
// does not hold the whole original.
func DecodeDeadLetterMsg(h nats.Header, data []byte) (*DeadLetter, error) {
	d, err := DecodeDeadLetter(data)
	if err != nil {
		return nil, err
	}
	d.OriginalSize, d.OriginalSHA256 = len(d.OriginalData), h.Get(HeaderOriginalSHA256)
	if n, err := strconv.Atoi(h.Get(HeaderOriginalSize)); err == nil {
		d.OriginalSize = n
	}
	d.Truncated = h.Get(HeaderTruncated) != ""
	return d, nil
}

// deadLetterType is the Switchyard-Type header of every dead letter.
var deadLetterType = string(proto.MessageName((*dlqv1.DeadLetter)(nil)))

// deadLetter publishes m's dead letter and waits for it to be stored.
func (c *Consumer) deadLetter(ctx context.Context, m *Message, class errclass.Class, reason string, f ledger.Failure) error {
	d := &DeadLetter{
		OriginalSubject: m.Subject, OriginalHeaders: m.Header, OriginalData: m.Data,
		OriginalStream: m.Stream, OriginalSeq: m.Sequence,
		Consumer: c.cfg.Name, Class: class, Reason: reason, Attempts: f.Attempts,
		CustomerID:     m.Customer,
		FirstFailureAt: f.FirstFailureAt, LastFailureAt: f.LastFailureAt,
	}
	sum := sha256.Sum256(m.Data)
	msg := &nats.Msg{
		Subject: c.DeadLetterSubject(),
		Header: nats.Header{
			// One dead letter per delivery of one stored message, however
			// often this runs.
			wire.HeaderMsgID:     {"dlq:" + c.cfg.Name + ":" + m.Stream + ":" + strconv.FormatUint(m.Sequence, 10)},
			wire.HeaderType:      {deadLetterType},
			HeaderErrorClass:     {class.String()},
			HeaderConsumer:       {c.cfg.Name},
			HeaderOriginalSize:   {strconv.Itoa(len(m.Data))},
			HeaderOriginalSHA256: {hex.EncodeToString(sum[:])},
			// Set by WithExpectStream too; here so that it is measured.
			jetstream.ExpectedStreamHeader: {natsbus.StreamDLQ},
		},
	}
	var maxPayload int64
	if nc := c.js.Conn(); nc != nil {
		maxPayload = nc.MaxPayload()
	}
	var err error
	if msg.Data, err = encodeWithin(d, msg.Header, maxPayload); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(natsbus.StreamDLQ)); err != nil {
		return fmt.Errorf("publish dead letter to %s: %w", msg.Subject, err)
	}
	return nil
}

// encodeWithin encodes d so that it and its headers h fit in maxPayload
// (0 = no limit). A message that only just fit its own stream does not fit
// once wrapped with its headers, reason and times: rather than failing to
// dead-letter it for ever (the message would be redelivered and fail again
// without end), its data is cut to what fits, h records the cut
// (HeaderTruncated) and the reason says where the whole message is. d is
// changed accordingly.
func encodeWithin(d *DeadLetter, h nats.Header, maxPayload int64) ([]byte, error) {
	data, err := d.Encode()
	if err != nil || maxPayload <= 0 || int64(headerSize(h)+len(data)) <= maxPayload {
		return data, err
	}
	full, reason := d.OriginalData, d.Reason
	d.Truncated, d.OriginalSize = true, len(full)
	note := fmt.Sprintf(" [dead letter truncated to fit the NATS max_payload of %d bytes: the original data is %d bytes, sha256 %s; the whole message is %s #%d]",
		maxPayload, len(full), h.Get(HeaderOriginalSHA256), d.OriginalStream, d.OriginalSeq)
	d.Reason = reason + note
	keep := len(full)
	// Each round removes the measured excess; a shorter field never has a
	// longer length prefix, so two rounds suffice. Should even no data not
	// fit (an enormous reason), the reason is cut too.
	for round := 0; round < 4; round++ {
		h.Set(HeaderTruncated, strconv.Itoa(keep)+"/"+strconv.Itoa(len(full)))
		d.OriginalData = full[:keep]
		if data, err = d.Encode(); err != nil {
			return nil, err
		}
		over := int64(headerSize(h)+len(data)) - maxPayload
		if over <= 0 {
			return data, nil
		}
		if keep == 0 && len(reason) > maxReasonWhenTruncated {
			reason = strings.ToValidUTF8(reason[:maxReasonWhenTruncated], "") + "…"
			d.Reason = reason + note
		}
		keep = max(0, keep-int(over))
	}
	return nil, fmt.Errorf("dead letter does not fit the NATS max_payload of %d bytes even without the original data (%d bytes of headers and envelope)",
		maxPayload, headerSize(h)+len(data))
}

// maxReasonWhenTruncated is where a reason is cut when the envelope does
// not fit even without the original data.
const maxReasonWhenTruncated = 1 << 10

// headerSize is what NATS counts against max_payload for headers h, as
// sent on the wire: "NATS/1.0\r\n", "Key: value\r\n" per value, "\r\n".
func headerSize(h nats.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}
