// Package deadletter reads and resolves the hub's dead letters (stream DLQ):
// the operations behind `switchyard dlq` and the ops console's failures
// page. A dead letter is removed from the stream when it is replayed or
// discarded, so the stream holds open failures only.
package deadletter

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/wire"
)

// Entry is one open dead letter and its sequence in the DLQ stream.
type Entry struct {
	Seq uint64
	*consumer.DeadLetter
	// CustomerID is the canonical id of the customer the dead letter's
	// message is about: the envelope's customer_id, else the one the
	// message names (CustomerOf); "" when neither says.
	CustomerID string
}

// Filter selects dead letters; zero fields match everything.
type Filter struct {
	Consumer  string
	Class     string        // transient, auth, permanent, unknown
	OlderThan time.Duration // last failure at least this long ago
}

func (f Filter) match(d *consumer.DeadLetter, now time.Time) bool {
	return (f.Consumer == "" || d.Consumer == f.Consumer) &&
		(f.Class == "" || d.Class.String() == f.Class) &&
		(f.OlderThan == 0 || now.Sub(d.LastFailureAt) >= f.OlderThan)
}

// ErrNotFound means no open dead letter has that sequence (it was replayed
// or discarded, or never existed).
var ErrNotFound = errors.New("no open dead letter with this sequence")

// Store is the DLQ stream.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	sign   ed25519.PrivateKey // nil: replays go out unsigned
}

// SignReplaysWith makes Replay sign each replay with the operator's
// replay key (consumer.SignReplay), so consumers given its public key
// (consumer.Config.ReplayKeys) can tell it from a forged replay header.
func (s *Store) SignReplaysWith(key ed25519.PrivateKey) { s.sign = key }

// Open binds to the DLQ stream.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	s, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("DLQ stream: %w", err)
	}
	return &Store{js: js, stream: s}, nil
}

// Get returns one open dead letter.
func (s *Store) Get(ctx context.Context, seq uint64) (Entry, error) {
	raw, err := s.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	d, err := consumer.DecodeDeadLetterMsg(raw.Header, raw.Data)
	if err != nil {
		return Entry{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return entry(seq, d, raw.Data), nil
}

// List returns the open dead letters matching f (and, when given, only the
// sequences in only), oldest first. It reads the stream with an ordered
// consumer, so resolved (deleted) dead letters cost nothing.
func (s *Store) List(ctx context.Context, f Filter, only []uint64) ([]Entry, error) {
	now := time.Now()
	var out []Entry
	if len(only) > 0 {
		for _, n := range only {
			e, err := s.Get(ctx, n)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if f.match(e.DeadLetter, now) {
				out = append(out, e)
			}
		}
		return out, nil
	}
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	defer func() {
		if ci := cons.CachedInfo(); ci != nil {
			_ = s.stream.DeleteConsumer(context.WithoutCancel(ctx), ci.Name)
		}
	}()
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	if info.NumPending == 0 {
		return nil, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		d, err := consumer.DecodeDeadLetterMsg(m.Headers(), m.Data())
		if err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", meta.Sequence.Stream, err)
		}
		if f.match(d, now) {
			out = append(out, entry(meta.Sequence.Stream, d, m.Data()))
		}
		if meta.NumPending == 0 {
			return out, nil
		}
	}
}

// gone reports whether a delete failed because the message is already
// deleted (the server says "no message found", code 10057, or 10037).
func gone(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound || apiErr.ErrorCode == 10057)
}

// Plan is what replaying a dead letter does.
type Plan struct {
	Seq      uint64 `json:"seq"`
	Consumer string `json:"consumer"`
	Subject  string `json:"subject"`
	ReplayOf string `json:"replay_of"` // the message id the consumer handles it as
	MsgID    string `json:"msg_id"`    // the replay's own Nats-Msg-Id
	Bytes    int    `json:"bytes"`
	// Effect says in words what the replay will do ("publish …").
	Effect string `json:"effect"`
}

// PlanReplay describes the replay of e without doing it (a dry run).
func PlanReplay(e Entry) Plan {
	root := e.OriginalHeaders.Get(consumer.HeaderReplayOf)
	if root == "" {
		root = e.OriginalMsgID
	}
	what := fmt.Sprintf("the original %d bytes", e.OriginalSize)
	if e.Truncated {
		what = fmt.Sprintf("the whole original (%d bytes, read from %s #%d and checked against its SHA-256; the dead letter holds only a truncated copy)",
			e.OriginalSize, e.OriginalStream, e.OriginalSeq)
	}
	return Plan{Seq: e.Seq, Consumer: e.Consumer, Subject: e.OriginalSubject, ReplayOf: root,
		MsgID: "replay:" + strconv.FormatUint(e.Seq, 10) + ":" + root, Bytes: e.OriginalSize,
		Effect: fmt.Sprintf("publish %s to %s again, for consumer %s only, handled as message %s "+
			"(effects its ledger records as done for that id are skipped, the rest are done now), then remove dead letter %d",
			what, e.OriginalSubject, e.Consumer, root, e.Seq)}
}

// ErrOriginalGone means a truncated dead letter cannot be replayed: the
// whole original is no longer in its stream, or what is there is not it.
var ErrOriginalGone = errors.New("the whole original is not in its stream")

// original returns the data to replay: the dead letter's copy, or for a
// truncated one the whole message from its stream, checked by its SHA-256
// (never the cut copy: replaying it would hand a consumer half a message).
func (s *Store) original(ctx context.Context, e Entry) ([]byte, error) {
	if !e.Truncated {
		return e.OriginalData, nil
	}
	src, err := s.js.Stream(ctx, e.OriginalStream)
	if err != nil {
		return nil, fmt.Errorf("replay %d: stream %s: %w", e.Seq, e.OriginalStream, err)
	}
	raw, err := src.GetMsg(ctx, e.OriginalSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("replay %d: %s #%d: %w (it holds only a truncated copy: discard it with a note, and have reconcile re-send the event)",
			e.Seq, e.OriginalStream, e.OriginalSeq, ErrOriginalGone)
	}
	if err != nil {
		return nil, fmt.Errorf("replay %d: read %s #%d: %w", e.Seq, e.OriginalStream, e.OriginalSeq, err)
	}
	sum := sha256.Sum256(raw.Data)
	if hex.EncodeToString(sum[:]) != e.OriginalSHA256 || len(raw.Data) != e.OriginalSize {
		return nil, fmt.Errorf("replay %d: %s #%d is not the message that failed: %w", e.Seq, e.OriginalStream, e.OriginalSeq, ErrOriginalGone)
	}
	return raw.Data, nil
}

// Result is a replay that happened.
type Result struct {
	Plan
	Stream   string `json:"stream"`
	Sequence uint64 `json:"sequence"`
}

// Replay republishes the original, marked so only the consumer that gave
// up handles it and handles it under the original's id, then removes the
// dead letter. Replaying one dead letter twice stores the message once
// (the replay's id is derived from the dead letter).
func (s *Store) Replay(ctx context.Context, e Entry) (Result, error) {
	p := PlanReplay(e)
	data, err := s.original(ctx, e)
	if err != nil {
		return Result{}, err
	}
	h := nats.Header{}
	for k, vs := range e.OriginalHeaders {
		h[k] = append([]string(nil), vs...)
	}
	// A fresh id so JetStream stores it although the original is within
	// the dedup window.
	h.Set(wire.HeaderMsgID, p.MsgID)
	h.Set(consumer.HeaderReplayOf, p.ReplayOf)
	h.Set(consumer.HeaderReplayFor, e.Consumer)
	msg := &nats.Msg{Subject: e.OriginalSubject, Data: data, Header: h}
	h.Del(consumer.HeaderReplaySig) // a signature the original carried covers another replay
	if s.sign != nil {
		consumer.SignReplay(s.sign, msg)
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	if err != nil {
		return Result{}, fmt.Errorf("replay %d: publish: %w (the dead letter is kept)", e.Seq, err)
	}
	if err := s.stream.DeleteMsg(ctx, e.Seq); err != nil && !gone(err) {
		return Result{}, fmt.Errorf("replay %d: published as %s #%d but the dead letter was not removed: %w", e.Seq, ack.Stream, ack.Sequence, err)
	}
	return Result{Plan: p, Stream: ack.Stream, Sequence: ack.Sequence}, nil
}

// Discard removes a dead letter without replaying it.
func (s *Store) Discard(ctx context.Context, e Entry) error {
	if err := s.stream.DeleteMsg(ctx, e.Seq); err != nil && !gone(err) {
		return fmt.Errorf("discard %d: %w", e.Seq, err)
	}
	return nil
}
