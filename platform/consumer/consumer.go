// Package consumer runs a durable JetStream pull consumer and owns the ack
// policy for every service: handlers return an error and this package alone
// decides what happens to the message.
//
//	nil                         ack
//	transient / unknown error   nak with jittered backoff, never sooner than Retry-After, until MaxAttempts
//	auth / permanent error      dead letter at once
//	attempts exhausted          dead letter
//	panic in the handler        dead letter (permanent), the process keeps running
//
// A dead letter is published to dlq.<consumer> (a dlq.v1 envelope with the
// original subject, headers and data, the class, the reason, the attempts
// and the first and last failure times) and only then is the original
// terminated, so a message is never dropped: if the dead letter cannot be
// published the message is retried instead. Its id is derived from the
// original's stream and sequence, so publishing it twice stores it once.
//
// The server never gives up on a message by itself (MaxDeliver is
// unlimited); redelivery after a crash comes from AckWait expiring, and a
// handler that works longer than AckWait (parked behind a vendor's rate
// limiter, say) is kept alive with InProgress every AckWait/3. A Handler's
// consumer pulls a message only when a worker is free to start it, so no
// message waits unattended in a buffer while AckWait runs out; a batch
// consumer's next batch, pulled while the last is handled, is kept alive
// while it waits for a busy worker. Should two
// deliveries of one message still meet (a replay, a crash), package
// ledger's Once lets only one run an effect.
//
// A consumer binds to its durable, which `switchyard migrate` made from
// natsbus's catalogue (natsbus.Durables): Run never creates or changes
// it, and refuses to start, saying to run `switchyard migrate`, when it is
// missing or would not deliver what the handler expects. Config.Create is
// the exception, for the framework's own tests and ad-hoc tools.
package consumer

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	mnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/telemetry"
	"github.com/switchyard/switchyard/proto/wire"
)

// Message is one delivery handed to a Handler.
type Message struct {
	Subject   string
	Data      []byte
	Header    nats.Header
	ID        string // the original's id for a replay, else Nats-Msg-Id, else "<stream>:<sequence>"
	Stream    string
	Sequence  uint64 // stream sequence
	Attempt   int    // 1 on the first delivery
	Published time.Time
	// Customer is set by the handler once it knows whom the message is
	// about (a canonical customer id): the consumer's log lines about the
	// message then carry it as customer_id.
	Customer string

	msg  jetstream.Msg
	ctx  context.Context // a batch's message: its own process span and log fields (see Context)
	took time.Duration   // how long it was handled on its own (Each); 0: its batch's share
}

// Context is what a batch handler does for this message alone (what it
// publishes for it, say) under: the message's own process span and log
// fields, so each event's trace goes on through its own work rather than
// through the first message's. Outside a batch it returns ctx.
func (m *Message) Context(ctx context.Context) context.Context {
	if m.ctx != nil {
		return m.ctx
	}
	return ctx
}

// FirstTry reports whether this is the message's first delivery and not a
// replay: no earlier run of its handler can have done anything (a hint for
// ledger.OnceFresh; the ledger's claim still guards the effect).
func (m *Message) FirstTry() bool {
	return m.Attempt == 1 && m.Header.Get(HeaderReplayOf) == ""
}

// InProgress tells the server the handler is still working, resetting AckWait.
func (m *Message) InProgress() error { return m.msg.InProgress() }

// Handler handles one message. It must be safe to run again for the same
// message (see package ledger) and to run concurrently for different ones.
type Handler func(ctx context.Context, m *Message) error

// BatchHandler handles the messages of one pull together, typically in one
// database transaction. nil means every message is done and all are acked;
// an error means none is. A transient or auth error is every message's
// (each is retried or dead-lettered by the usual policy); after a permanent
// or unknown one the consumer hands each message to the handler alone, so
// one bad message is isolated and dead-lettered while the rest are acked.
// A Results error settles each message by its own outcome instead. It must
// be safe to run again for the same messages. Batches are handled one at
// a time unless Config.Workers asks for more (then batches may be handled
// in any order, as messages are).
type BatchHandler func(ctx context.Context, ms []*Message) error

// Results is a BatchHandler's error when its messages fared differently:
// Results[i] is ms[i]'s outcome (nil: handled, acked), each settled by the
// usual policy — one message waiting for another's event is retried alone
// while the rest of its batch is acked. Its length must be the batch's.
type Results []error

func (r Results) Error() string {
	var first error
	n := 0
	for _, err := range r {
		if err != nil {
			n++
			first = cmp.Or(first, err)
		}
	}
	if n == 0 {
		return "no message failed"
	}
	return fmt.Sprintf("%d of %d messages failed; the first: %v", n, len(r), first)
}

// Config configures a consumer. Zero values take the defaults shown.
type Config struct {
	Name          string          // durable name, also the dead-letter subject dlq.<Name>; required
	Stream        string          // required
	Subjects      []string        // filter; empty = the whole stream
	MaxAttempts   int             // 6: deliveries before a retryable failure is dead-lettered
	Backoff       []time.Duration // 1s, 5s, 30s, 2m, 10m: delay after failed attempt n (last repeats), ±DefaultJitter (see type Backoff)
	AckWait       time.Duration   // with Create, 30s: redelivery after a crash; a bound durable has its own
	MaxAckPending int             // with Create, 1000; a bound durable has its own
	Batch         int             // NewBatch only, 500: the most messages per call (New pulls one message per idle worker)
	Workers       int             // 8: messages handled at once; NewBatch: batches handled at once, 1
	BatchLinger   time.Duration   // NewBatch only, 5ms: how long a batch waits to fill once it has a message
	// Pull is NewBatch's read-ahead, by default (Workers+1)×Batch: the
	// messages the client may hold before a worker takes them. Each waits
	// unattended, its AckWait running, so a handler that may wait on a
	// vendor's rate limit keeps it to one Batch (see Each).
	Pull         int
	DrainTimeout time.Duration // 20s: time in-flight handlers get on shutdown

	// Create makes Run create the durable, or update it to this Config,
	// instead of binding to the one `switchyard migrate` made. It is for
	// the framework's own tests and for tools with ad-hoc consumers, never
	// for a service: a service's settings must not change what the others
	// rely on, and its NATS identity need not be allowed to.
	Create bool

	// ReplayKeys are the operator's replay public keys. With any, only a
	// replay signed by one of them (HeaderReplaySig) is handled as a
	// replay; replay headers without a valid signature are dropped from
	// the message, which is then handled as an ordinary one, and counted
	// (switchyard_consumer_replays_refused_total). Empty: replay headers
	// are trusted.
	ReplayKeys []ed25519.PublicKey

	// OnFailure, if set, hears of every failed attempt once its fate is
	// settled: retryAt is when the redelivery is due, or zero when the
	// message was dead-lettered. Services publish their "pending retry"
	// and "failed" outcomes from it; it cannot change the decision.
	OnFailure func(ctx context.Context, m *Message, class errclass.Class, reason string, retryAt time.Time)

	Logger *slog.Logger
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

func (c *Config) defaults() error {
	if c.Name == "" || c.Stream == "" {
		return errors.New("consumer: Name and Stream are required")
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}
	}
	if c.AckWait <= 0 {
		c.AckWait = natsbus.DefaultAckWait
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = natsbus.DefaultMaxAckPending
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Batch <= 0 {
		c.Batch = 1
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 20 * time.Second
	}
	if c.BatchLinger <= 0 {
		c.BatchLinger = 5 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Tracer == nil {
		c.Tracer = tnoop.NewTracerProvider()
	}
	if c.Meter == nil {
		c.Meter = mnoop.NewMeterProvider()
	}
	return nil
}

// Consumer runs one durable consumer.
type Consumer struct {
	cfg     Config
	js      jetstream.JetStream
	ledger  *ledger.Ledger
	handler Handler
	batch   BatchHandler // set by NewBatch; then handler is unused
	tracer  trace.Tracer
	m       *metrics
	now     func() time.Time

	stopping atomic.Bool // shutdown under way: retryable failures are not failures
	durable  atomic.Pointer[jetstream.Consumer]
}

// New validates cfg and returns a Consumer; Run starts it.
func New(js jetstream.JetStream, l *ledger.Ledger, cfg Config, h Handler) (*Consumer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Meter, cfg.Name)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, js: js, ledger: l, handler: h, m: m, now: time.Now,
		tracer: cfg.Tracer.Tracer("github.com/switchyard/switchyard/platform/consumer")}
	// Lag: what the server holds for this consumer, read at each scrape.
	// The callback is registered apart from the instrument: a process with
	// several consumers (the projector has one per stream) shares one gauge.
	lagAttrs := metric.WithAttributes(attribute.String("consumer", cfg.Name), attribute.String("stream", cfg.Stream))
	meter := cfg.Meter.Meter("github.com/switchyard/switchyard/platform/consumer")
	lag, err := meter.Int64ObservableGauge("switchyard_consumer_lag", metric.WithUnit("{message}"),
		metric.WithDescription("Messages stored and not yet acknowledged (pending + in flight), by consumer and stream"))
	if err != nil {
		return nil, err
	}
	if _, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		dc := c.durable.Load()
		if dc == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err := (*dc).Info(ctx)
		if err != nil {
			return nil // not observed this time; the scrape goes on
		}
		o.ObserveInt64(lag, int64(info.NumPending)+int64(info.NumAckPending), lagAttrs)
		return nil
	}, lag); err != nil {
		return nil, err
	}
	return c, nil
}

// NewBatch is New for a BatchHandler: one goroutine pulls up to cfg.Batch
// messages (default 500; waiting at most BatchLinger for more once it has
// one) and hands them to h at once. Dead letters, retries and metrics work
// per message as with New.
func NewBatch(js jetstream.JetStream, l *ledger.Ledger, cfg Config, h BatchHandler) (*Consumer, error) {
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	// Room for the batches in hand and the next one buffered.
	cfg.MaxAckPending = max(cfg.MaxAckPending, (cfg.Workers+1)*cfg.Batch)
	c, err := New(js, l, cfg, nil)
	if err != nil {
		return nil, err
	}
	c.batch = h
	return c, nil
}

// DeadLetterSubject is where this consumer's dead letters go.
func (c *Consumer) DeadLetterSubject() string { return wire.DLQPrefix + c.cfg.Name }

// Run binds to the durable consumer (see Config.Create) and handles messages
// until ctx is cancelled; then it stops pulling, lets in-flight handlers
// finish (up to DrainTimeout) and returns. Messages not settled by then are
// redelivered after AckWait. A durable that is missing or incompatible is
// an error that errors.Is natsbus.ErrNotMigrated.
func (c *Consumer) Run(ctx context.Context) error {
	pull := c.pullSize()
	cons, err := c.bind(ctx, pull)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started: nothing was taken
		}
		return err
	}
	c.durable.Store(&cons)
	it, err := cons.Messages(jetstream.PullMaxMessages(pull), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return fmt.Errorf("consumer %s: pull: %w", c.cfg.Name, err)
	}
	// Handlers get a context that outlives ctx by DrainTimeout, so work in
	// flight at shutdown can finish and settle.
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	stopWatching := c.drainOnCancel(ctx, it)
	w := c.startWorkers(hctx)
	runErr := c.dispatch(ctx, it, w)
	stopWatching()
	it.Stop()
	c.waitForWorkers(w, cancelHandlers)
	c.flushAcks()
	return runErr
}

// pullExpiry is how long one pull request waits on the server. nats.go
// beats at half of it and, missing two beats, forgets its pull and pulls
// again: with one message a pull the iterator can end up with no request on
// the server (pending messages, no waiting pull — seen under load in CI, as
// in nats-server#4736), and only that reset revives it. The default, 30 s,
// held a consumer still that long; 5 s bounds the stall at 5 s, for an idle
// consumer's pull request every 5 s.
const pullExpiry = 5 * time.Second

// pullSize is how many messages the consumer asks the server for at once.
// A message handler asks for one at a time, and only once a worker is free
// to start it: a prefetched message would age toward AckWait unattended
// (kept alive by no one) while every worker is parked behind a vendor's
// rate limiter, and be redelivered to another replica while this one still
// holds it. The cost is a round trip to the server per message, small
// beside a handler's I/O. A batch handler's next batch fills while one is
// handled.
func (c *Consumer) pullSize() int {
	if c.batch != nil && c.cfg.Pull > 0 {
		return max(c.cfg.Pull, c.cfg.Batch)
	}
	if c.batch != nil {
		return (c.cfg.Workers + 1) * c.cfg.Batch
	}
	return 1
}

// drainOnCancel drains it once ctx is cancelled, so the dispatch loop
// reads out what it still holds and ends; the returned func stops the
// watch when the loop ended first.
func (c *Consumer) drainOnCancel(ctx context.Context, it jetstream.MessagesContext) (stop func()) {
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			c.stopping.Store(true)
			it.Drain()
		case <-stopped:
		}
	}()
	return func() { close(stopped) }
}

// workers handle what dispatch hands them, a message (or a batch) at a
// time.
type workers struct {
	jobs chan []jetstream.Msg
	// idle holds a token per worker free to start a message; a message
	// handler pulls only with one in hand. Unused by a batch handler.
	idle chan struct{}
	wg   sync.WaitGroup
}

func (c *Consumer) startWorkers(hctx context.Context) *workers {
	w := &workers{jobs: make(chan []jetstream.Msg), idle: make(chan struct{}, c.cfg.Workers)}
	for i := 0; i < c.cfg.Workers; i++ {
		w.wg.Add(1)
		w.idle <- struct{}{}
		go func() {
			defer w.wg.Done()
			for jms := range w.jobs {
				if c.batch != nil {
					c.handleBatch(hctx, jms)
					continue
				}
				c.handle(hctx, jms[0])
				w.idle <- struct{}{}
			}
		}()
	}
	return w
}

// dispatch pulls messages and hands them to the workers until the iterator
// ends: cleanly once ctx is cancelled and it is read out, or with the
// error that ended it.
func (c *Consumer) dispatch(ctx context.Context, it jetstream.MessagesContext, w *workers) error {
	for {
		tookIdle := false // a free worker's token, owed back if no message comes of it
		if c.batch == nil {
			select {
			case <-w.idle:
				tookIdle = true
			case <-ctx.Done(): // stopping: read out the iterator, handing back what it still gives
			}
		}
		jms, err := c.next(it)
		if tookIdle && len(jms) == 0 {
			// No message for the free worker (a missed heartbeat, below):
			// it is still free. Keeping its token would lose the worker, and
			// with one worker stop the consumer for good.
			w.idle <- struct{}{}
		}
		c.handOver(ctx, w, jms)
		if errors.Is(err, jetstream.ErrNoHeartbeat) && ctx.Err() == nil {
			// The node leading the durable went away (a cluster failover):
			// the iterator pulls again by itself, from the new leader, and
			// unacked messages are redelivered there. Not the end.
			c.cfg.Logger.WarnContext(ctx, "no heartbeat from JetStream (a node went away?); pulling again", "consumer", c.cfg.Name)
			continue
		}
		if err == nil {
			continue
		}
		// A closed iterator is a clean stop only when we asked for it; the
		// connection closing underneath (revoked credentials) is not.
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consumer %s: %w", c.cfg.Name, err)
	}
}

// handOver gives jms to a worker, or hands them back to the server when
// stopping: buffered messages go back at once instead of being worked
// through past the orchestrator's grace period.
func (c *Consumer) handOver(ctx context.Context, w *workers, jms []jetstream.Msg) {
	if len(jms) == 0 {
		return
	}
	if ctx.Err() != nil {
		nakAll(jms)
		return
	}
	select {
	case w.jobs <- jms:
		return
	default:
	}
	// Every worker is busy (parked behind a vendor's rate limit, say): the
	// batch in hand waits here, kept alive as a handled one is, so it is
	// not redelivered while it waits.
	t := time.NewTicker(c.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case w.jobs <- jms:
			return
		case <-t.C:
			for _, jm := range jms {
				_ = jm.InProgress()
			}
		case <-ctx.Done():
			nakAll(jms) // every worker is busy and we are stopping
			return
		}
	}
}

// waitForWorkers lets in-flight handlers finish, at most DrainTimeout;
// then it cancels them, and what they did not settle is redelivered.
func (c *Consumer) waitForWorkers(w *workers, cancelHandlers context.CancelFunc) {
	close(w.jobs)
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.DrainTimeout):
		cancelHandlers()
		c.cfg.Logger.Warn("consumer drain timed out; unsettled messages will be redelivered", "consumer", c.cfg.Name)
	}
}

// flushAcks makes sure the last acks, sent without waiting, have left
// before the caller closes the connection (a lost ack is only a
// redelivery, but a clean stop should not cause any).
func (c *Consumer) flushAcks() {
	if nc := c.js.Conn(); nc != nil && !nc.IsClosed() {
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			c.cfg.Logger.Warn("flush acks on stop", "consumer", c.cfg.Name, "error", err)
		}
	}
}

// bind returns the durable: the migrated one, checked to deliver what this
// consumer expects, or with Create the one it creates or updates. A bound
// durable's AckWait rules the keep-alive.
func (c *Consumer) bind(ctx context.Context, pull int) (jetstream.Consumer, error) {
	d := natsbus.Durable{Name: c.cfg.Name, Stream: c.cfg.Stream, Subjects: c.cfg.Subjects, AckWait: c.cfg.AckWait, MaxAckPending: c.cfg.MaxAckPending}
	if c.cfg.Create {
		cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, d.Config())
		if err != nil {
			return nil, fmt.Errorf("consumer %s: create: %w", c.cfg.Name, err)
		}
		return cons, nil
	}
	cons, err := natsbus.Bind(ctx, c.js, d)
	if err != nil {
		return nil, err // names the consumer and says what to do
	}
	got := cons.CachedInfo().Config
	if got.AckWait > 0 {
		c.cfg.AckWait = got.AckWait
	}
	if got.MaxAckPending > 0 && got.MaxAckPending < pull {
		c.cfg.Logger.WarnContext(ctx, "the durable allows fewer unacknowledged messages than this consumer pulls: batches will be smaller (the catalogue in platform/natsbus sets it; switchyard migrate applies it)",
			"consumer", c.cfg.Name, "stream", c.cfg.Stream, "max_ack_pending", got.MaxAckPending, "pull", pull)
	}
	return cons, nil
}

// next returns the next message, or for a batch consumer the next batch:
// the first message it waits for, then whatever else arrives within
// BatchLinger, up to Batch. A batch is returned even with an error.
func (c *Consumer) next(it jetstream.MessagesContext) ([]jetstream.Msg, error) {
	jm, err := it.Next()
	if err != nil {
		return nil, err
	}
	jms := []jetstream.Msg{jm}
	for c.batch != nil && len(jms) < c.cfg.Batch {
		jm, err := it.Next(jetstream.NextMaxWait(c.cfg.BatchLinger))
		if errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			return jms, err
		}
		jms = append(jms, jm)
	}
	return jms, nil
}

func nakAll(jms []jetstream.Msg) {
	for _, jm := range jms {
		_ = jm.Nak()
	}
}

// message wraps a delivery; ok is false (and the delivery acked) for a
// replay meant for another consumer.
func (c *Consumer) message(ctx context.Context, jm jetstream.Msg) (m *Message, ok bool) {
	m = &Message{Subject: jm.Subject(), Data: jm.Data(), Header: jm.Headers(), msg: jm, Attempt: 1}
	if meta, err := jm.Metadata(); err == nil {
		m.Stream, m.Sequence, m.Attempt, m.Published = meta.Stream, meta.Sequence.Stream, int(meta.NumDelivered), meta.Timestamp
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	if err := c.verifyReplay(m); err != nil {
		c.m.replaysRefused.Add(ctx, 1, c.m.attrs(""))
		c.cfg.Logger.WarnContext(ctx, "replay headers refused; handled as an ordinary message",
			"consumer", c.cfg.Name, "subject", m.Subject, "stream", m.Stream, "seq", m.Sequence, "error", err)
	}
	m.ID = m.Header.Get(HeaderReplayOf)
	if m.ID == "" {
		m.ID = m.Header.Get(wire.HeaderMsgID)
	}
	if m.ID == "" {
		m.ID = m.Stream + ":" + strconv.FormatUint(m.Sequence, 10)
	}
	if target := m.Header.Get(HeaderReplayFor); target != "" && target != c.cfg.Name {
		// A replay meant for another consumer: nothing to do here.
		_ = jm.Ack()
		c.m.processed.Add(ctx, 1, c.m.attrs("ack"))
		return nil, false
	}
	return m, true
}

// startSpan starts the message's process span, continuing the trace
// carried in its headers.
func (c *Consumer) startSpan(ctx context.Context, m *Message) (context.Context, trace.Span) {
	ctx = telemetry.Extract(ctx, m.Header)
	ctx, span := c.tracer.Start(ctx, "process "+m.Subject, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Subject),
			attribute.String("messaging.consumer.group.name", c.cfg.Name),
			attribute.String("messaging.message.id", m.ID),
			attribute.Int("messaging.nats.delivery.attempt", m.Attempt),
		))
	ctx = logging.WithEventID(ctx, m.ID)
	if rid := m.Header.Get(wire.HeaderRequestID); rid != "" {
		ctx = logging.WithRequestID(ctx, rid) // the webhook request that stored it
	}
	return ctx, span
}

func (c *Consumer) handle(ctx context.Context, jm jetstream.Msg) {
	m, ok := c.message(ctx, jm)
	if !ok {
		return
	}
	ctx, span := c.startSpan(ctx, m)
	defer span.End()

	start := c.now()
	stopKeepAlive := c.keepAlive(m)
	defer stopKeepAlive() // through settle too: it may wait on the database and the DLQ
	err := c.call(ctx, []*Message{m})
	if m.Customer != "" {
		ctx = logging.WithCustomerID(ctx, m.Customer)
		span.SetAttributes(attribute.String("switchyard.customer_id", m.Customer))
	}
	c.observe(ctx, m, c.now().Sub(start), span, err)
	c.settle(ctx, m, err)
}

// handleBatch runs the batch handler over the deliveries; if it fails, it
// runs it again for each message alone and settles each by its own result.
func (c *Consumer) handleBatch(ctx context.Context, jms []jetstream.Msg) {
	ms := make([]*Message, 0, len(jms))
	ctxs := make([]context.Context, 0, len(jms))
	spans := make([]trace.Span, 0, len(jms))
	for _, jm := range jms {
		m, ok := c.message(ctx, jm)
		if !ok {
			continue
		}
		mctx, span := c.startSpan(ctx, m)
		ms, ctxs, spans = append(ms, m), append(ctxs, mctx), append(spans, span)
	}
	if len(ms) == 0 {
		return
	}
	stopKeepAlive := c.keepAlive(ms...)
	defer stopKeepAlive()
	// The batch's own work (one database transaction, say) belongs to the
	// first message's trace — so an event handled alone, as at low load,
	// shows that work, its PostgreSQL spans included, in its own trace —
	// and links to every other message's process span.
	links := make([]trace.Link, 0, len(spans)-1)
	for _, sp := range spans[1:] {
		links = append(links, trace.Link{SpanContext: sp.SpanContext()})
	}
	bctx, bspan := c.tracer.Start(trace.ContextWithSpanContext(ctx, spans[0].SpanContext()), "process batch "+c.cfg.Stream,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.consumer.group.name", c.cfg.Name),
			attribute.Int("messaging.batch.message_count", len(ms)),
		))
	for i, m := range ms {
		m.ctx = ctxs[i]
	}
	start := c.now()
	err := c.call(bctx, ms)
	if err != nil {
		bspan.RecordError(err)
		bspan.SetStatus(codes.Error, errclass.Of(err).String())
	}
	bspan.End()
	per := c.now().Sub(start) / time.Duration(len(ms))
	var each Results
	if errors.As(err, &each) && len(each) != len(ms) {
		each = nil // not this batch's: the batch failed as a whole
	}
	// A transient or auth failure is the batch's (the database is down):
	// every message shares it. A permanent or unknown one may be one bad
	// message: each is tried alone, so only that one is dead-lettered.
	split := each == nil && err != nil && len(ms) > 1 && (errclass.Of(err) == errclass.ClassPermanent || errclass.Of(err) == errclass.ClassUnknown)
	if split {
		c.cfg.Logger.WarnContext(ctx, "batch failed; handling its messages one by one", "consumer", c.cfg.Name, "messages", len(ms), "error", err)
	}
	for i, m := range ms {
		merr, d := err, per
		if each != nil {
			merr = each[i]
		}
		if split {
			mstart := c.now()
			merr = c.call(ctxs[i], ms[i:i+1])
			d = c.now().Sub(mstart)
		} else if m.took > 0 {
			d = m.took // handled on its own (Each)
		}
		var p *panicError
		if errors.As(merr, &p) {
			c.cfg.Logger.ErrorContext(ctxs[i], "handler panic", "consumer", c.cfg.Name, "panic", fmt.Sprint(p.value), "stack", string(p.stack))
		}
		if m.Customer != "" {
			ctxs[i] = logging.WithCustomerID(ctxs[i], m.Customer)
			spans[i].SetAttributes(attribute.String("switchyard.customer_id", m.Customer))
		}
		c.observe(ctxs[i], m, d, spans[i], merr)
		c.settle(ctxs[i], m, merr)
		spans[i].End()
	}
}

func (c *Consumer) observe(ctx context.Context, m *Message, took time.Duration, span trace.Span, err error) {
	c.m.duration.Record(ctx, took.Seconds(), c.m.attrs(""))
	if m.Attempt > 1 {
		c.m.redelivered.Add(ctx, 1, c.m.attrs(""))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errclass.Of(err).String())
	}
}

// call runs the handler, turning a panic into a permanent error.
func (c *Consumer) call(ctx context.Context, ms []*Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.cfg.Logger.ErrorContext(ctx, "handler panic", "consumer", c.cfg.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errclass.Permanent(fmt.Errorf("handler panic: %v", r))
		}
	}()
	if c.batch != nil {
		return c.batch(ctx, ms)
	}
	return c.handler(ctx, ms[0])
}

// keepAlive sends InProgress while a handler runs longer than a third of AckWait.
func (c *Consumer) keepAlive(ms ...*Message) func() {
	t := time.NewTicker(c.cfg.AckWait / 3)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				for _, m := range ms {
					_ = m.msg.InProgress()
				}
			case <-done:
				return
			}
		}
	}()
	return func() { t.Stop(); close(done) }
}

// settle is the ack policy.
func (c *Consumer) settle(ctx context.Context, m *Message, herr error) {
	log := c.cfg.Logger
	name := c.cfg.Name
	if herr == nil {
		if m.Attempt > 1 {
			if err := c.ledger.ClearFailures(ctx, name, m.ID); err != nil {
				log.WarnContext(ctx, "clear failure history", "consumer", name, "error", err)
			}
		}
		if err := m.msg.Ack(); err != nil {
			log.WarnContext(ctx, "ack failed; the message will be redelivered and deduplicated", "consumer", name, "error", err)
		}
		c.m.processed.Add(ctx, 1, c.m.attrs("ack"))
		log.DebugContext(ctx, "message handled", "consumer", name, "subject", m.Subject, "attempt", m.Attempt)
		return
	}
	class := errclass.Of(herr)
	reason := herr.Error()
	if c.stopping.Load() && class.Retryable() {
		// Interrupted by our own shutdown, not failed: hand it back without
		// spending an attempt or reporting a retry.
		_ = m.msg.Nak()
		return
	}
	c.m.failed.Add(ctx, 1, metric.WithAttributes(attribute.String("consumer", name), attribute.String("class", class.String())))
	f, err := c.ledger.RecordFailure(ctx, name, m.ID, class.String(), reason, c.now())
	if err != nil {
		log.WarnContext(ctx, "record failure history", "consumer", name, "error", err)
		f = ledgerFailureFallback(m, class, reason, c.now())
	}
	// Count failures, not deliveries: a shutdown's hand-back or an AckWait
	// redelivery is not a failed attempt.
	if class.Retryable() && f.Attempts < c.cfg.MaxAttempts {
		delay := c.backoff(m.Attempt, errclass.RetryHint(herr))
		log.InfoContext(ctx, "handler failed; retrying", "consumer", name, "class", class.String(), "attempt", m.Attempt, "retry_in", delay.String(), "error", herr)
		if err := m.msg.NakWithDelay(delay); err != nil {
			log.WarnContext(ctx, "nak failed; redelivery after AckWait", "consumer", name, "error", err)
		}
		c.m.processed.Add(ctx, 1, c.m.attrs("retry"))
		if c.cfg.OnFailure != nil {
			c.cfg.OnFailure(ctx, m, class, reason, c.now().Add(delay))
		}
		return
	}
	if err := c.deadLetter(ctx, m, class, reason, f); err != nil {
		delay := c.backoff(m.Attempt, 0)
		log.ErrorContext(ctx, "dead letter not stored; the message stays and is retried", "consumer", name, "error", err, "retry_in", delay.String())
		_ = m.msg.NakWithDelay(delay)
		c.m.processed.Add(ctx, 1, c.m.attrs("retry"))
		return
	}
	log.ErrorContext(ctx, "message dead-lettered", "consumer", name, "class", class.String(), "attempts", m.Attempt, "subject", c.DeadLetterSubject(), "error", herr)
	// Plain Term: servers before 2.10.4 ignore TermWithReason and would
	// redeliver the message forever; the reason is in the dead letter.
	if err := m.msg.Term(); err != nil {
		log.WarnContext(ctx, "term failed; a redelivery will find the dead letter already stored", "consumer", name, "error", err)
	}
	if err := c.ledger.ClearFailures(ctx, name, m.ID); err != nil {
		log.WarnContext(ctx, "clear failure history", "consumer", name, "error", err)
	}
	c.m.processed.Add(ctx, 1, c.m.attrs("dead_letter"))
	if c.cfg.OnFailure != nil {
		c.cfg.OnFailure(ctx, m, class, reason, time.Time{})
	}
	c.m.deadLetters.Add(ctx, 1, metric.WithAttributes(attribute.String("consumer", name), attribute.String("class", class.String())))
}

func ledgerFailureFallback(m *Message, class errclass.Class, reason string, now time.Time) ledger.Failure {
	return ledger.Failure{Attempts: m.Attempt, FirstFailureAt: m.Published, LastFailureAt: now, LastClass: class.String(), LastReason: reason}
}

// maxDelay caps any retry delay, including one asked for by Retry-After.
const maxDelay = time.Hour

// DefaultJitter is the randomization factor of every consumer's retry
// delays (Backoff.Jitter): a delay of d is drawn from [0.75 d, 1.25 d].
const DefaultJitter = 0.25

// Backoff spaces a message's retries. The delay after failed attempt n is
// Schedule[n-1] (the last entry repeats: CONSUMER_BACKOFF, by default 1s,
// 5s, 30s, 2m, 10m, which grows about fivefold a step), randomized by
// ±Jitter with backoff/v4's formula (ExponentialBackOff.RandomizationFactor):
// messages that failed together, say a burst against a vendor that went
// away, come back spread over a window instead of all at once, so the
// vendor's recovery is not met by a thundering herd.
//
// A Retry-After hint is a floor: the delay is never below it, and is
// spread over [hint, hint×(1+Jitter)] when the hint exceeds the scheduled
// delay, for the same reason. Nothing exceeds Max (near it, delays are
// spread over [Max×(1−Jitter), Max]).
//
// The schedule is a list, not backoff/v4's iterator, because the attempt
// number comes with each delivery (the server counts them, across
// replicas and restarts) and the consumer keeps no state between
// deliveries; and because the list is the operator's documented setting.
// Delay is safe for concurrent use if Rand is.
type Backoff struct {
	Schedule []time.Duration // non-empty
	Jitter   float64         // randomization factor in [0, 1); 0: none
	Max      time.Duration   // cap; 0: none
	// Rand returns a number in [0, 1); nil means math/rand/v2's Float64.
	// Tests inject a fixed one.
	Rand func() float64
}

// Delay is how long to wait after failed attempt attempt (1 for the first
// delivery) when the failure asked for hint (0: none).
func (b Backoff) Delay(attempt int, hint time.Duration) time.Duration {
	if len(b.Schedule) == 0 {
		return max(hint, 0)
	}
	random := b.Rand
	if random == nil {
		random = rand.Float64
	}
	f := min(max(b.Jitter, 0), 1)
	base := b.Schedule[min(max(attempt-1, 0), len(b.Schedule)-1)]
	// backoff/v4's getRandomValueFromInterval: uniform in [base−f·base, base+f·base].
	d := time.Duration(float64(base) * (1 - f + 2*f*random()))
	if hint > d {
		d = hint + time.Duration(float64(hint)*f*random())
	}
	if b.Max > 0 && d > b.Max {
		lo := max(time.Duration(float64(b.Max)*(1-f)), min(hint, b.Max))
		d = lo + time.Duration(float64(b.Max-lo)*random())
	}
	return d
}

func (c *Consumer) backoff(attempt int, hint time.Duration) time.Duration {
	return Backoff{Schedule: c.cfg.Backoff, Jitter: DefaultJitter, Max: maxDelay}.Delay(attempt, hint)
}

type metrics struct {
	failed         metric.Int64Counter
	processed      metric.Int64Counter
	redelivered    metric.Int64Counter
	deadLetters    metric.Int64Counter
	replaysRefused metric.Int64Counter
	duration       metric.Float64Histogram
	byResult       map[string]metric.MeasurementOption // "" = consumer only; built once, read concurrently
}

func newMetrics(mp metric.MeterProvider, consumer string) (*metrics, error) {
	m := mp.Meter("github.com/switchyard/switchyard/platform/consumer")
	out := &metrics{byResult: map[string]metric.MeasurementOption{}}
	var err error
	if out.processed, err = m.Int64Counter("switchyard_consumer_processed", metric.WithDescription("Messages settled, by consumer and result (ack, retry, dead_letter)")); err != nil {
		return nil, err
	}
	if out.failed, err = m.Int64Counter("switchyard_consumer_failed", metric.WithDescription("Failed handler attempts, by consumer and error class")); err != nil {
		return nil, err
	}
	if out.redelivered, err = m.Int64Counter("switchyard_consumer_redelivered", metric.WithDescription("Deliveries after the first, by consumer")); err != nil {
		return nil, err
	}
	if out.deadLetters, err = m.Int64Counter("switchyard_consumer_dead_letters", metric.WithDescription("Messages dead-lettered, by consumer and error class")); err != nil {
		return nil, err
	}
	if out.replaysRefused, err = m.Int64Counter("switchyard_consumer_replays_refused", metric.WithDescription("Messages whose replay headers no operator replay key signed, by consumer (handled as ordinary messages)")); err != nil {
		return nil, err
	}
	if out.duration, err = m.Float64Histogram("switchyard_consumer_handle_duration", metric.WithUnit("s"),
		metric.WithDescription("Handler time per message, by consumer"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)); err != nil {
		return nil, err
	}
	for _, r := range []string{"", "ack", "retry", "dead_letter"} {
		kv := []attribute.KeyValue{attribute.String("consumer", consumer)}
		if r != "" {
			kv = append(kv, attribute.String("result", r))
		}
		out.byResult[r] = metric.WithAttributeSet(attribute.NewSet(kv...))
	}
	// Every series exists from the start at 0, so rates and alert rules
	// see a consumer that has not failed yet.
	ctx := context.Background()
	for _, r := range []string{"ack", "retry", "dead_letter"} {
		out.processed.Add(ctx, 0, out.byResult[r])
	}
	out.redelivered.Add(ctx, 0, out.byResult[""])
	out.replaysRefused.Add(ctx, 0, out.byResult[""])
	for _, class := range []errclass.Class{errclass.ClassTransient, errclass.ClassAuth, errclass.ClassPermanent, errclass.ClassUnknown} {
		kv := metric.WithAttributes(attribute.String("consumer", consumer), attribute.String("class", class.String()))
		out.failed.Add(ctx, 0, kv)
		out.deadLetters.Add(ctx, 0, kv)
	}
	return out, nil
}

func (m *metrics) attrs(result string) metric.MeasurementOption { return m.byResult[result] }
