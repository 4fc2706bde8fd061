// Command subscriber-go is an example subscriber to Switchyard's domain
// events, written as a team outside the hub would write it: it depends on
// the hub's proto module (the contracts and their subject bindings), the
// NATS client and OpenTelemetry, nothing else of the hub.
//
// It reads a durable pull consumer on the BILLING stream (created at the
// first start if its credentials allow), decodes each message by its subject, continues the
// publisher's trace from the traceparent header, does its "work" — one JSON
// line per message on stdout — and acks after the work, naks with a delay
// when the work fails, and stops cleanly on SIGTERM or SIGINT.
//
// Configuration, from the environment:
//
//	NATS_URL              default nats://127.0.0.1:4222
//	NATS_USER             with NATS_PASSWORD or NATS_PASSWORD_FILE; or NATS_CREDS (a .creds file)
//	NATS_INBOX_PREFIX     default _INBOX_<NATS_USER>: the only inboxes the hub lets a user read
//	SUBSCRIBER_NAME       the durable consumer's name (required; letters, digits, - and _)
//	SUBSCRIBER_STREAM     default BILLING
//	SUBSCRIBER_FILTER     default billing.>
//	SUBSCRIBER_DELIVER    where the consumer starts if this creates it: all (default), new, or an RFC 3339 time
//
// See docs/subscribing.md in the Switchyard repository.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/proto/subjects"
)

// headerType is the header naming the message's protobuf type. The subject
// alone says how to decode; the header, when present, is a cross-check.
const headerType = "Switchyard-Type"

// headerReplayFor names the one consumer a replayed dead letter is for
// (the operator replays to the original subject, so every subscriber of
// the subject sees it): everyone else acks it and does nothing.
const headerReplayFor = "Switchyard-Replay-For"

// retryDelay is how long a message whose work failed waits before the
// server delivers it again.
const retryDelay = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "subscriber:", err)
		os.Exit(1)
	}
}

// config is the subscriber's environment, validated.
type config struct {
	url, user, password, creds, inboxPrefix string
	name, stream, filter                    string
	deliver                                 jetstream.DeliverPolicy
	startTime                               *time.Time
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func loadConfig(getenv func(string) string) (config, error) {
	or := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	c := config{
		url:      or("NATS_URL", nats.DefaultURL),
		user:     getenv("NATS_USER"),
		password: getenv("NATS_PASSWORD"),
		creds:    getenv("NATS_CREDS"),
		name:     getenv("SUBSCRIBER_NAME"),
		stream:   or("SUBSCRIBER_STREAM", "BILLING"),
		filter:   or("SUBSCRIBER_FILTER", "billing.>"),
	}
	if f := getenv("NATS_PASSWORD_FILE"); f != "" && c.password == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return c, fmt.Errorf("NATS_PASSWORD_FILE: %w", err)
		}
		c.password = strings.TrimSpace(string(b))
	}
	c.inboxPrefix = getenv("NATS_INBOX_PREFIX")
	if c.inboxPrefix == "" && c.user != "" {
		c.inboxPrefix = "_INBOX_" + c.user
	}
	if !validName.MatchString(c.name) {
		return c, fmt.Errorf("SUBSCRIBER_NAME %q: want one NATS subject token (letters, digits, - and _)", c.name)
	}
	switch d := or("SUBSCRIBER_DELIVER", "all"); d {
	case "all":
		c.deliver = jetstream.DeliverAllPolicy
	case "new":
		c.deliver = jetstream.DeliverNewPolicy
	default:
		t, err := time.Parse(time.RFC3339, d)
		if err != nil {
			return c, fmt.Errorf("SUBSCRIBER_DELIVER %q: want all, new or an RFC 3339 time", d)
		}
		c.deliver, c.startTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return c, nil
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	opts := []nats.Option{nats.Name(cfg.name)}
	if cfg.creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.creds))
	}
	if cfg.user != "" {
		opts = append(opts, nats.UserInfo(cfg.user, cfg.password))
	}
	if cfg.inboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.inboxPrefix))
	}
	nc, err := nats.Connect(cfg.url, opts...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", cfg.url, err)
	}
	defer func() { err = errors.Join(err, nc.Drain()) }()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	cons, err := durable(ctx, js, cfg)
	if err != nil {
		return err
	}

	// A real service adds an exporter (OTLP) to the provider; without one
	// the spans are still made, with their own ids, and go nowhere.
	tp := sdktrace.NewTracerProvider()
	defer func() { err = errors.Join(err, tp.Shutdown(context.Background())) }()
	h := &handler{name: cfg.name, tracer: tp.Tracer("subscriber-go"), out: json.NewEncoder(stdout)}

	// The messages in hand when the signal comes are still handled and
	// acked: their work must not see the cancellation.
	work := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(msg jetstream.Msg) { h.handle(work, msg) })
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	fmt.Fprintf(os.Stderr, "subscriber: consuming %s on %s\n", cfg.name, cfg.stream)
	<-ctx.Done()
	// Hand the messages already pulled to the handler, then stop.
	cc.Drain()
	<-cc.Closed()
	return nil
}

// durable binds to the subscriber's durable pull consumer, and creates it
// when it does not exist yet. A subscriber with only the permissions it
// needs (natsbus.SubscriberPermissions) may not create it: the operator
// does, with the same settings (`switchyard subscriber`), and it is found
// here. Where it starts (DeliverPolicy) is fixed when it is created; after
// that, each start goes on where the last one stopped.
func durable(ctx context.Context, js jetstream.JetStream, cfg config) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, cfg.stream, cfg.name)
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		if err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w", cfg.name, cfg.stream, err)
		}
		if got := cons.CachedInfo().Config.FilterSubject; got != cfg.filter {
			fmt.Fprintf(os.Stderr, "subscriber: consumer %s reads %q, not SUBSCRIBER_FILTER %q: the operator changes it (switchyard subscriber)\n", cfg.name, got, cfg.filter)
		}
		return cons, nil
	}
	cons, err = js.CreateConsumer(ctx, cfg.stream, jetstream.ConsumerConfig{
		Durable:       cfg.name,
		FilterSubject: cfg.filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1000,
		MaxDeliver:    -1, // never given up on by the server: we decide
		DeliverPolicy: cfg.deliver,
		OptStartTime:  cfg.startTime,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s does not exist, and creating it failed (a subscriber with least privilege may not: the operator creates it): %w", cfg.name, cfg.stream, err)
	}
	return cons, nil
}

// handler does the work for one message at a time (Consume calls it
// sequentially).
type handler struct {
	name   string // the durable's: a replay for another consumer is not ours
	tracer trace.Tracer
	out    *json.Encoder
}

// line is what the work prints for each message.
type line struct {
	Subject             string `json:"subject"`
	Type                string `json:"type"`
	EventID             string `json:"event_id"`
	CanonicalCustomerID string `json:"canonical_customer_id"`
	TraceID             string `json:"trace_id"`
	SpanID              string `json:"span_id"`
	ParentSpanID        string `json:"parent_span_id"`
}

func (h *handler) handle(ctx context.Context, msg jetstream.Msg) {
	// Continue the publisher's trace: the consumer span's parent is the
	// span that published the message.
	parent := propagation.TraceContext{}.Extract(ctx, headerCarrier(msg.Headers()))
	ctx, span := h.tracer.Start(parent, "process "+msg.Subject(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", msg.Subject())))
	defer span.End()

	if to := msg.Headers().Get(headerReplayFor); to != "" && to != h.name {
		_ = msg.Ack() // another consumer's replay of a message we had
		return
	}
	m, err := decode(msg)
	if err != nil {
		// It will never decode: redelivering it is pointless. Term keeps
		// the reason in the server's advisory; the stream keeps the message.
		fmt.Fprintln(os.Stderr, "subscriber:", err)
		span.RecordError(err)
		_ = msg.TermWithReason(err.Error())
		return
	}
	if err := h.work(ctx, msg.Subject(), m, span); err != nil {
		fmt.Fprintf(os.Stderr, "subscriber: %s: %v (again in %s)\n", msg.Subject(), err, retryDelay)
		span.RecordError(err)
		_ = msg.NakWithDelay(retryDelay)
		return
	}
	// Ack after the work, and wait for the server to confirm it, so that a
	// stop right after this message does not have it delivered again.
	ackCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ackCtx); err != nil {
		fmt.Fprintf(os.Stderr, "subscriber: ack %s: %v\n", msg.Subject(), err)
	}
}

// decode picks the message type by subject (proto/subjects, the Go form of
// proto/subjects.json) and cross-checks the Switchyard-Type header when the
// publisher set one.
func decode(msg jetstream.Msg) (proto.Message, error) {
	m, err := subjects.Decode(msg.Subject(), msg.Data())
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", msg.Subject(), err)
	}
	typ := string(m.ProtoReflect().Descriptor().FullName())
	if h := msg.Headers().Get(headerType); h != "" && h != typ {
		return nil, fmt.Errorf("decode %s: header %s is %q, the subject says %q", msg.Subject(), headerType, h, typ)
	}
	return m, nil
}

// work is the subscriber's job: here, one JSON line per message. Billing
// events carry their ids in meta; crm and support outcomes at the top.
func (h *handler) work(_ context.Context, subject string, m proto.Message, span trace.Span) error {
	l := line{Subject: subject, Type: string(m.ProtoReflect().Descriptor().FullName())}
	if ev, ok := m.(subjects.BillingEvent); ok {
		l.EventID, l.CanonicalCustomerID = ev.GetMeta().GetEventId(), ev.GetMeta().GetCanonicalCustomerId()
	} else if ev, ok := m.(interface {
		GetEventId() string
		GetCanonicalCustomerId() string
	}); ok {
		l.EventID, l.CanonicalCustomerID = ev.GetEventId(), ev.GetCanonicalCustomerId()
	}
	sc := span.SpanContext()
	l.TraceID, l.SpanID = sc.TraceID().String(), sc.SpanID().String()
	if ro, ok := span.(sdktrace.ReadOnlySpan); ok && ro.Parent().IsValid() {
		l.ParentSpanID = ro.Parent().SpanID().String()
	}
	return h.out.Encode(l)
}

// headerCarrier lets the W3C propagator read NATS headers, whose keys are
// case-sensitive (unlike http.Header's): the hub writes "traceparent".
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
