package deadletter_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// A truncated dead letter (its envelope would not fit the server's
// max_payload) is replayed with the whole original from its stream, checked
// by SHA-256 — never the cut copy it holds; with the original gone, the
// replay is refused and the dead letter kept.
func TestReplayOfATruncatedDeadLetterUsesTheWholeOriginal(t *testing.T) {
	ctx := context.Background()
	_, js := testkit.NATS(t).Connect(t)
	whole := bytes.Repeat([]byte("0123456789"), 1000)
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: "billing.payment.failed", Data: whole, Header: nats.Header{"Nats-Msg-Id": {"orig-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	deadLetter := func(seq uint64, sum string) uint64 {
		t.Helper()
		d := &consumer.DeadLetter{OriginalSubject: "billing.payment.failed", OriginalData: whole[:100], OriginalMsgID: "orig-1",
			OriginalStream: natsbus.StreamBilling, OriginalSeq: seq, Consumer: "crm", Class: errclass.ClassPermanent, Reason: "too big",
			Attempts: 1, FirstFailureAt: time.Now(), LastFailureAt: time.Now()}
		data, err := d.Encode()
		if err != nil {
			t.Fatal(err)
		}
		a, err := js.PublishMsg(ctx, &nats.Msg{Subject: "dlq.crm", Data: data, Header: nats.Header{
			consumer.HeaderOriginalSize:   {strconv.Itoa(len(whole))},
			consumer.HeaderOriginalSHA256: {sum},
			consumer.HeaderTruncated:      {"100/" + strconv.Itoa(len(whole))},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return a.Sequence
	}
	sum := sha256.Sum256(whole)
	store, err := deadletter.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	e, err := store.Get(ctx, deadLetter(ack.Sequence, hex.EncodeToString(sum[:])))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Truncated || e.OriginalSize != len(whole) {
		t.Fatalf("read back: truncated %v, size %d; want true, %d", e.Truncated, e.OriginalSize, len(whole))
	}
	res, err := store.Replay(ctx, e)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	billing, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	got, err := billing.GetMsg(ctx, res.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, whole) {
		t.Fatalf("replayed %d bytes, want the whole %d-byte original", len(got.Data), len(whole))
	}

	// A dead letter whose original is no longer in its stream, and one
	// whose stream position holds another message.
	wrongSum := sha256.Sum256([]byte("another message"))
	for name, seq := range map[string]uint64{
		"gone":            deadLetter(ack.Sequence+1000, hex.EncodeToString(sum[:])),
		"another message": deadLetter(ack.Sequence, hex.EncodeToString(wrongSum[:])),
	} {
		e, err := store.Get(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Replay(ctx, e); !errors.Is(err, deadletter.ErrOriginalGone) {
			t.Errorf("%s: replay = %v, want ErrOriginalGone", name, err)
		}
		if _, err := store.Get(ctx, seq); err != nil {
			t.Errorf("%s: the refused dead letter is gone: %v", name, err)
		}
	}
}

// A store given the operator's replay key signs what it replays, so a
// consumer with the public key handles it as a replay; a signature the
// failed message carried from an earlier replay is replaced.
func TestReplayIsSignedWithTheOperatorKey(t *testing.T) {
	ctx := context.Background()
	_, js := testkit.NATS(t).Connect(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	d := &consumer.DeadLetter{OriginalSubject: "billing.payment.failed", OriginalData: []byte("event"), OriginalMsgID: "orig-1",
		OriginalHeaders: nats.Header{"Nats-Msg-Id": {"orig-1"}, consumer.HeaderReplaySig: {"stale"}},
		OriginalStream:  natsbus.StreamBilling, OriginalSeq: 1, Consumer: "crm", Class: errclass.ClassPermanent, Reason: "failed",
		Attempts: 1, FirstFailureAt: time.Now(), LastFailureAt: time.Now()}
	data, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	a, err := js.PublishMsg(ctx, &nats.Msg{Subject: "dlq.crm", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	store, err := deadletter.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	store.SignReplaysWith(priv)
	e, err := store.Get(ctx, a.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Replay(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	billing, err := js.Stream(ctx, natsbus.StreamBilling)
	if err != nil {
		t.Fatal(err)
	}
	got, err := billing.GetMsg(ctx, res.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if err := consumer.VerifyReplay([]ed25519.PublicKey{pub}, got.Subject, got.Header, got.Data); err != nil {
		t.Errorf("the replay does not verify with the operator's key: %v", err)
	}
	if got.Header.Get(consumer.HeaderReplayFor) != "crm" || got.Header.Get(consumer.HeaderReplayOf) != "orig-1" {
		t.Errorf("replay headers %v", got.Header)
	}
}
