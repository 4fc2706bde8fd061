package consumer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/wire"
)

// TestDeadLetterTooLargeForMaxPayloadIsStoredTruncated: a message that only
// just fit its stream cannot be wrapped in a dead-letter envelope within the
// server's max_payload (1 MiB here). It is dead-lettered anyway, once, with
// its data cut and its length, SHA-256 and stream sequence recorded, so the
// whole message can be fetched from its stream — it used to fail to
// dead-letter and be redelivered for ever. A small one is stored whole,
// with the same headers.
func TestDeadLetterTooLargeForMaxPayloadIsStoredTruncated(t *testing.T) {
	e := setup(t)
	nc, _ := e.broker.Connect(t)
	if nc.MaxPayload() != 1<<20 {
		t.Fatalf("embedded server max_payload = %d, want 1 MiB", nc.MaxPayload())
	}
	var calls atomic.Int64
	e.start(t, consumer.Config{Name: "big", Subjects: []string{"billing.test.big"}, AckWait: time.Second},
		func(ctx context.Context, m *consumer.Message) error {
			calls.Add(1)
			return errclass.Permanent(errors.New("no such customer"))
		})

	big := bytes.Repeat([]byte("x"), 1<<20-64) // fits, with its one header, and no more
	ack, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: "billing.test.big", Data: big, Header: nats.Header{"Nats-Msg-Id": {"big-1"}}})
	if err != nil {
		t.Fatalf("publish the original: %v", err)
	}
	e.publish(t, "billing.test.big", "small-1", `{"small":true}`)

	testkit.WaitFor(t, 20*time.Second, "both dead-lettered", func() bool { return len(dlqMsgs(t, e, "dlq.big")) == 2 })
	testkit.WaitFor(t, 10*time.Second, "the consumer settled", e.settled(t, natsbus.StreamBilling, "big"))
	testkit.Never(t, 2*time.Second, "a redelivery after the dead letter", func() bool { return calls.Load() > 2 })

	byID := map[string]*nats.Msg{}
	for _, m := range dlqMsgs(t, e, "dlq.big") {
		byID[m.Header.Get("Nats-Msg-Id")] = m
	}
	bigMsg, smallMsg := byID["dlq:big:BILLING:"+strconv.FormatUint(ack.Sequence, 10)], byID["dlq:big:BILLING:"+strconv.FormatUint(ack.Sequence+1, 10)]
	if bigMsg == nil || smallMsg == nil {
		t.Fatalf("dead letters %v, want one per original", byID)
	}
	for _, m := range []*nats.Msg{bigMsg, smallMsg} {
		if got, want := m.Header.Get(wire.HeaderType), "switchyard.dlq.v1.DeadLetter"; got != want {
			t.Errorf("dead letter %s: %s = %q, want %q", m.Header.Get(wire.HeaderMsgID), wire.HeaderType, got, want)
		}
	}
	sum := sha256.Sum256(big)
	d, err := consumer.DecodeDeadLetterMsg(bigMsg.Header, bigMsg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Truncated || d.OriginalSize != len(big) || d.OriginalSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("truncated dead letter: truncated=%v size=%d sha256=%s; want true, %d, %x", d.Truncated, d.OriginalSize, d.OriginalSHA256, len(big), sum)
	}
	if len(d.OriginalData) == 0 || len(d.OriginalData) >= len(big) || !bytes.HasPrefix(big, d.OriginalData) {
		t.Errorf("kept %d bytes, want a proper prefix of the %d-byte original", len(d.OriginalData), len(big))
	}
	if got, want := bigMsg.Header.Get(consumer.HeaderTruncated), strconv.Itoa(len(d.OriginalData))+"/"+strconv.Itoa(len(big)); got != want {
		t.Errorf("%s = %q, want %q", consumer.HeaderTruncated, got, want)
	}
	if d.OriginalStream != natsbus.StreamBilling || d.OriginalSeq != ack.Sequence || d.OriginalMsgID != "big-1" || d.Class != errclass.ClassPermanent {
		t.Errorf("dead letter names %s #%d (%s, %s), want %s #%d (big-1, permanent)", d.OriginalStream, d.OriginalSeq, d.OriginalMsgID, d.Class, natsbus.StreamBilling, ack.Sequence)
	}
	if !strings.Contains(d.Reason, "no such customer") || !strings.Contains(d.Reason, "truncated") || !strings.Contains(d.Reason, natsbus.StreamBilling+" #"+strconv.FormatUint(ack.Sequence, 10)) {
		t.Errorf("reason %q, want the error and where the whole message is", d.Reason)
	}
	// The whole message is where the dead letter says, and it is the one.
	s, err := e.js.Stream(context.Background(), d.OriginalStream)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := s.GetMsg(context.Background(), d.OriginalSeq)
	if err != nil {
		t.Fatalf("fetch the original from %s #%d: %v", d.OriginalStream, d.OriginalSeq, err)
	}
	if got := sha256.Sum256(orig.Data); hex.EncodeToString(got[:]) != d.OriginalSHA256 {
		t.Error("the message at the recorded sequence does not have the recorded SHA-256")
	}

	small, err := consumer.DecodeDeadLetterMsg(smallMsg.Header, smallMsg.Data)
	if err != nil {
		t.Fatal(err)
	}
	smallSum := sha256.Sum256([]byte(`{"small":true}`))
	if small.Truncated || string(small.OriginalData) != `{"small":true}` || small.OriginalSize != len(`{"small":true}`) ||
		small.OriginalSHA256 != hex.EncodeToString(smallSum[:]) || smallMsg.Header.Get(consumer.HeaderTruncated) != "" {
		t.Errorf("small dead letter: truncated=%v data=%q size=%d sha256=%s", small.Truncated, small.OriginalData, small.OriginalSize, small.OriginalSHA256)
	}
}

// dlqMsgs returns the stored messages on subject in the DLQ stream, oldest first.
func dlqMsgs(t *testing.T, e *env, subject string) []*nats.Msg {
	t.Helper()
	s, err := e.js.Stream(context.Background(), natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(context.Background(), seq)
		if err != nil || raw.Subject != subject {
			continue
		}
		out = append(out, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	}
	return out
}

// TestDeadLetterCarriesTheCustomer: what a handler learnt of the customer
// before giving up (Message.Customer) travels in the envelope, so readers
// need not decode the original data — which a truncated dead letter does not
// hold whole — to find whom it concerns. A handler that learnt nothing
// leaves it empty.
func TestDeadLetterCarriesTheCustomer(t *testing.T) {
	e := setup(t)
	e.start(t, consumer.Config{Name: "who", Subjects: []string{"billing.test.who"}, AckWait: time.Second},
		func(ctx context.Context, m *consumer.Message) error {
			if strings.Contains(string(m.Data), "known") {
				m.Customer = "cust_0123456789abcdef"
			}
			return errclass.Permanent(errors.New("refused"))
		})
	e.publish(t, "billing.test.who", "who-1", `{"known":true}`)
	e.publish(t, "billing.test.who", "who-2", `{"anonymous":true}`)
	testkit.WaitFor(t, 20*time.Second, "both dead-lettered", func() bool { return len(dlqMsgs(t, e, "dlq.who")) == 2 })

	got := map[string]string{}
	for _, m := range dlqMsgs(t, e, "dlq.who") {
		d, err := consumer.DecodeDeadLetterMsg(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		got[string(d.OriginalData)] = d.CustomerID
	}
	if got[`{"known":true}`] != "cust_0123456789abcdef" || got[`{"anonymous":true}`] != "" {
		t.Errorf("customer ids in the envelopes = %v, want the handler's for the known one and none for the other", got)
	}
}
