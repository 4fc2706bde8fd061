package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/stripesig"
	"github.com/switchyard/switchyard/platform/telemetry"
	"github.com/switchyard/switchyard/proto/wire"
)

// Options built once: span options and publish options are allocated per
// call otherwise, on the hottest path in the hub.
var (
	serverSpan = []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithNewRoot(),
		trace.WithAttributes(attribute.String("http.request.method", http.MethodPost), attribute.String("http.route", "/webhooks/stripe")),
	}
	producerSpan = []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.operation.type", "publish")),
	}
	expectStripeStream = jetstream.WithExpectStream(natsbus.StreamStripe)
)

// Publisher stores a message in JetStream asynchronously. It is the part of
// jetstream.JetStream the webhook path uses; tests may wrap it to inject faults.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Webhook is the POST /webhooks/stripe handler. Order of work, cheapest
// rejection first: method, size, signature over the raw bytes, JSON schema of
// the routed fields, environment guard, then publish and wait for the PubAck.
// Nothing is stored unless every check passed; nothing is acknowledged to
// Stripe unless JetStream stored it.
type Webhook struct {
	cfg      Config
	maxBody  int          // from BodyLimit: what the NATS server can store with the gateway's headers
	payload  func() int64 // the connected server's max_payload, checked per message; nil = not checked
	verifier *stripesig.Verifier
	pub      Publisher
	log      *slog.Logger
	tracer   trace.Tracer
	metrics  *metrics
	now      func() time.Time
	bufs     sync.Pool
}

func newWebhook(cfg Config, pub Publisher, log *slog.Logger, tp trace.TracerProvider, m *metrics, now func() time.Time) (*Webhook, error) {
	v, err := stripesig.NewVerifier(cfg.secretValues(), cfg.Tolerance, now)
	if err != nil {
		return nil, err
	}
	return &Webhook{
		cfg: cfg, maxBody: MaxBodyBytes, verifier: v, pub: pub, log: log, metrics: m, now: now,
		tracer: tp.Tracer("github.com/switchyard/switchyard/services/gateway"),
		bufs:   sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 8<<10)) }},
	}, nil
}

// ServeHTTP takes one webhook through the steps of Webhook's doc, each of
// which answers and counts the request itself when it rejects it.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := h.now()
	ctx, span, reqID := h.begin(w, r)
	defer span.End()
	if r.Method != http.MethodPost {
		h.wrongMethod(ctx, w, span, r.Method)
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	reusable := true
	defer func() { h.recycle(buf, reusable) }()
	body, ok := h.readBody(ctx, w, r, span, buf)
	if !ok {
		return
	}
	sigHeader := r.Header.Get("Stripe-Signature")
	ev, ok := h.verifyAndValidate(ctx, w, span, body, sigHeader)
	if !ok {
		return
	}
	ctx = logging.WithEventID(ctx, ev.ID)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("stripe.event.id", ev.ID), attribute.String("stripe.event.type", ev.Type))
	}
	if !h.environmentAccepts(ctx, w, span, ev) {
		return
	}
	ack, err := h.publish(ctx, h.message(ev, body, sigHeader, reqID, received))
	if err != nil {
		reusable = h.notStored(ctx, w, span, err)
		return
	}
	h.stored(ctx, w, ev, ack, received)
}

// begin tags the request with its id (kept from the caller when plain, on
// the response and in ctx for the logs) and starts its span: a new root
// per webhook, as trace headers on a public endpoint are not trusted
// (anyone could force sampling), and Stripe sends none.
func (h *Webhook) begin(w http.ResponseWriter, r *http.Request) (context.Context, trace.Span, string) {
	reqID := requestID(r)
	w.Header()["X-Request-Id"] = []string{reqID} // canonical key already: no re-canonicalising per request
	ctx := logging.WithRequestID(r.Context(), reqID)
	ctx, span := h.tracer.Start(ctx, "POST /webhooks/stripe", serverSpan...)
	return ctx, span, reqID
}

func (h *Webhook) wrongMethod(ctx context.Context, w http.ResponseWriter, span trace.Span, method string) {
	span.SetAttributes(attribute.String("http.request.method", method))
	w.Header().Set("Allow", http.MethodPost)
	h.reject(ctx, w, span, http.StatusMethodNotAllowed, resultMethod, "use POST")
}

// readBody reads the body into buf, at most maxBody bytes: a declared
// length over the limit is refused before reading, and a body read past it
// after.
func (h *Webhook) readBody(ctx context.Context, w http.ResponseWriter, r *http.Request, span trace.Span, buf *bytes.Buffer) ([]byte, bool) {
	if r.ContentLength > int64(h.maxBody) {
		h.tooLarge(ctx, w, span, r.ContentLength)
		return nil, false
	}
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, int64(h.maxBody)+1)); err != nil {
		h.reject(ctx, w, span, http.StatusBadRequest, resultBodyRead, "could not read body")
		return nil, false
	}
	if buf.Len() > h.maxBody {
		h.tooLarge(ctx, w, span, -1)
		return nil, false
	}
	return buf.Bytes(), true
}

// recycle returns buf to the pool unless the request said it may still be
// in use, or it grew too big to keep.
func (h *Webhook) recycle(buf *bytes.Buffer, reusable bool) {
	if reusable && buf.Cap() <= 64<<10 {
		h.bufs.Put(buf)
	}
}

// verifyAndValidate checks the signature over the raw bytes, then the
// routed fields of the JSON.
func (h *Webhook) verifyAndValidate(ctx context.Context, w http.ResponseWriter, span trace.Span, body []byte, sigHeader string) (Event, bool) {
	if _, err := h.verifier.Verify(body, sigHeader); err != nil {
		code, result := sigFailure(err)
		h.reject(ctx, w, span, code, result, err.Error())
		return Event{}, false
	}
	ev, err := Validate(body, PinnedAPIVersion)
	if err != nil {
		h.invalid(ctx, w, span, err)
		return Event{}, false
	}
	return ev, true
}

// invalid answers a body Validate refused. It is a function of its own so
// that errors.As's target, which escapes, costs only refused requests an
// allocation.
func (h *Webhook) invalid(ctx context.Context, w http.ResponseWriter, span trace.Span, err error) {
	var nj *NotJSONError
	if errors.As(err, &nj) {
		h.reject(ctx, w, span, http.StatusBadRequest, resultInvalidJSON, "body is not a JSON object")
		return
	}
	h.reject(ctx, w, span, http.StatusUnprocessableEntity, resultInvalidEvent, err.Error())
}

// environmentAccepts is the environment guard: a live hub takes only
// livemode events, any other only test-mode ones.
func (h *Webhook) environmentAccepts(ctx context.Context, w http.ResponseWriter, span trace.Span, ev Event) bool {
	if ev.Livemode == h.cfg.AcceptsLivemode() {
		return true
	}
	h.metrics.livemode.Add(ctx, 1, metric.WithAttributes(attribute.Bool("livemode", ev.Livemode)))
	h.reject(ctx, w, span, http.StatusForbidden, resultLivemodeRejected,
		fmt.Sprintf("this %s hub accepts only livemode=%t events", h.cfg.Env, h.cfg.AcceptsLivemode()))
	return false
}

// message is the JetStream message of a verified event: the exact bytes
// received, and what the hub routes and records on in its headers.
func (h *Webhook) message(ev Event, body []byte, sigHeader, reqID string, received time.Time) *nats.Msg {
	versionStatus := "pinned"
	if ev.APIVersion != PinnedAPIVersion {
		versionStatus = "mismatch"
	}
	return &nats.Msg{
		Subject: wire.StripeEventSubject(ev.Type),
		Data:    body,
		Header: nats.Header{
			wire.HeaderMsgID:         {ev.ID},
			wire.HeaderEventType:     {ev.Type},
			wire.HeaderAPIVersion:    {ev.APIVersion},
			wire.HeaderLivemode:      {strconv.FormatBool(ev.Livemode)},
			wire.HeaderSignature:     {sigHeader},
			wire.HeaderEventCreated:  {strconv.FormatInt(ev.Created, 10)},
			wire.HeaderRequestID:     {reqID},
			wire.HeaderReceivedAt:    {received.UTC().Format(time.RFC3339Nano)},
			wire.HeaderVersionStatus: {versionStatus},
			// Set by expectStripeStream too; here so that it is measured
			// against max_payload with the rest.
			jetstream.ExpectedStreamHeader: {natsbus.StreamStripe},
		},
	}
}

// notStored answers an event JetStream did not store, and says whether
// the body's buffer may be reused.
func (h *Webhook) notStored(ctx context.Context, w http.ResponseWriter, span trace.Span, err error) (reusable bool) {
	if errors.Is(err, errTooLarge) || errors.Is(err, nats.ErrMaxPayload) {
		// Within the body limit, but not with these headers (an outsized
		// signature header) or on a server whose max_payload shrank since
		// start: it can never be stored as it is, so no 503.
		h.rejectCause(ctx, w, span, http.StatusRequestEntityTooLarge, resultTooLarge, "event too large to store", err)
		return true
	}
	// The message may still reach the server after we give up; keep the
	// buffer out of the pool so a late retry never sends reused bytes.
	w.Header().Set("Retry-After", "5")
	h.rejectCause(ctx, w, span, http.StatusServiceUnavailable, resultUnavailable, "event store unavailable; retry", err)
	return false
}

// stored counts a stored event and answers Stripe 200.
func (h *Webhook) stored(ctx context.Context, w http.ResponseWriter, ev Event, ack *jetstream.PubAck, received time.Time) {
	result := resultAccepted
	if ack.Duplicate {
		result = resultDuplicate
	}
	h.metrics.received.Add(ctx, 1, h.metrics.byResult[result])
	h.metrics.ackLatency.Record(ctx, h.now().Sub(received).Seconds())
	h.log.DebugContext(ctx, "webhook stored", "type", ev.Type, "duplicate", ack.Duplicate, "stream_sequence", ack.Sequence)
	if ev.APIVersion != PinnedAPIVersion && !ack.Duplicate { // counted once per stored event, not per retry
		h.metrics.mismatch.Add(ctx, 1, metric.WithAttributes(attribute.String("api_version", ev.APIVersion)))
		h.log.InfoContext(ctx, "accepted event in a non-pinned API version", "api_version", ev.APIVersion, "pinned", PinnedAPIVersion)
	}
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusOK)
	out := make([]byte, 0, 96)
	out = append(out, `{"received":true,"id":"`...)
	out = append(out, ev.ID...) // validated: [A-Za-z0-9_] only
	out = append(out, `","duplicate":`...)
	out = strconv.AppendBool(out, ack.Duplicate)
	out = append(out, "}\n"...)
	_, _ = w.Write(out)
}

// publish stores msg and waits for its PubAck, at most PublishTimeout.
func (h *Webhook) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	ctx, span := h.tracer.Start(ctx, "publish "+msg.Subject, producerSpan...)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.destination.name", msg.Subject),
			attribute.String("messaging.message.id", msg.Header.Get(wire.HeaderMsgID)),
		)
	}
	telemetry.Inject(ctx, msg.Header)
	if h.payload != nil {
		if size, limit := messageSize(msg), h.payload(); int64(size) > limit {
			span.SetStatus(codes.Error, errTooLarge.Error())
			return nil, fmt.Errorf("%w: %d bytes with headers, max_payload %d", errTooLarge, size, limit)
		}
	}
	f, err := h.pub.PublishMsgAsync(msg, expectStripeStream)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("publish: %w", err)
	}
	t := time.NewTimer(h.cfg.PublishTimeout)
	defer t.Stop()
	select {
	case ack := <-f.Ok():
		span.SetAttributes(attribute.Int64("messaging.nats.stream.sequence", int64(ack.Sequence)), attribute.Bool("messaging.nats.duplicate", ack.Duplicate))
		return ack, nil
	case err := <-f.Err():
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("pub ack: %w", err)
	case <-t.C:
		span.SetStatus(codes.Error, "pub ack timeout")
		return nil, fmt.Errorf("pub ack: no answer within %s", h.cfg.PublishTimeout)
	}
}

// tooLarge answers a body over the limit; n is its declared length, or -1
// when it was read past the limit.
func (h *Webhook) tooLarge(ctx context.Context, w http.ResponseWriter, span trace.Span, n int64) {
	msg := "body exceeds the " + strconv.Itoa(h.maxBody) + "-byte limit"
	if n >= 0 {
		msg = "body of " + strconv.FormatInt(n, 10) + " bytes exceeds the " + strconv.Itoa(h.maxBody) + "-byte limit"
	}
	h.reject(ctx, w, span, http.StatusRequestEntityTooLarge, resultTooLarge, msg)
}

func (h *Webhook) reject(ctx context.Context, w http.ResponseWriter, span trace.Span, status int, result, msg string) {
	h.rejectCause(ctx, w, span, status, result, msg, nil)
}

// rejectCause answers an error, counts and logs it once; cause (logged, never
// sent to the caller) is the internal error behind msg, if any.
func (h *Webhook) rejectCause(ctx context.Context, w http.ResponseWriter, span trace.Span, status int, result, msg string, cause error) {
	h.metrics.received.Add(ctx, 1, h.metrics.byResult[result])
	span.SetStatus(codes.Error, result)
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	attrs := []any{"status", status, "result", result, "reason", msg}
	lvl := slog.LevelInfo
	if cause != nil {
		lvl = slog.LevelWarn
		attrs = append(attrs, "error", cause)
	}
	h.log.Log(ctx, lvl, "webhook rejected", attrs...)
	writeError(w, status, result, msg, logging.RequestID(ctx))
}

func sigFailure(err error) (int, string) {
	switch {
	case errors.Is(err, stripesig.ErrNotSigned):
		return http.StatusBadRequest, resultSigMissing
	case errors.Is(err, stripesig.ErrInvalidHeader):
		return http.StatusBadRequest, resultSigMalformed
	case errors.Is(err, stripesig.ErrTooOld):
		return http.StatusBadRequest, resultSigExpired
	case errors.Is(err, stripesig.ErrTooNew):
		return http.StatusBadRequest, resultSigFuture
	default:
		return http.StatusBadRequest, resultSigInvalid
	}
}

// requestID keeps a caller's X-Request-Id when it is short and plain, or
// makes a new one.
func requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); v != "" && len(v) <= 64 && plain(v) {
		return v
	}
	var b [20]byte
	copy(b[:], "req_")
	const hexd = "0123456789abcdef"
	n := rand.Uint64()
	for i := 0; i < 16; i++ {
		b[4+i] = hexd[n>>(60-4*i)&0xf]
	}
	return string(b[:])
}

func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
