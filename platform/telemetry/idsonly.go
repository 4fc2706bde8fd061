package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// idsOnly is the tracer provider of a service whose spans go nowhere (no
// OTLP endpoint): every span gets a span id and continues its parent's
// trace, exactly as the SDK's would — so log lines, timeline entries, dead
// letters and the traceparent on every published message carry the same
// ids — but nothing is recorded. The SDK records a span in full
// (attributes, events, status, timestamps) even when no processor will
// ever see it; in the pipeline benchmark that was about 5% of the Go
// process's CPU, for spans that were dropped at End.
//
// Its decisions are the SDK default sampler's (parent based, always on):
// a child keeps its parent's trace flags and trace state, a root is
// sampled, so a subscriber that does export continues the trace. Setup
// uses it only when OTEL_TRACES_SAMPLER is unset; a configured sampler
// gets the SDK, which applies it.
//
// Each type embeds its no-op counterpart, so a method a later API adds
// does nothing here rather than break the build.
type idsOnly struct{ noop.TracerProvider }

func (p idsOnly) Tracer(string, ...trace.TracerOption) trace.Tracer { return idsTracer{provider: p} }

type idsTracer struct {
	noop.Tracer
	provider idsOnly
}

func (t idsTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var parent trace.SpanContext
	if cfg := trace.NewSpanStartConfig(opts...); !cfg.NewRoot() {
		parent = trace.SpanContextFromContext(ctx)
	}
	cfg := trace.SpanContextConfig{TraceFlags: trace.FlagsSampled}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = newTraceID()
	}
	cfg.SpanID = newSpanID()
	s := idsSpan{sc: trace.NewSpanContext(cfg), provider: t.provider}
	return trace.ContextWithSpan(ctx, s), s
}

// newTraceID and newSpanID draw from the runtime's per-thread generator:
// no lock between the services sharing a process. Ids need to be unique,
// not unpredictable (the SDK's are math/rand too).
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// idsSpan is a span that is only its context.
type idsSpan struct {
	noop.Span
	sc       trace.SpanContext
	provider idsOnly
}

func (s idsSpan) SpanContext() trace.SpanContext          { return s.sc }
func (s idsSpan) IsRecording() bool                       { return false }
func (s idsSpan) End(...trace.SpanEndOption)              {}
func (s idsSpan) AddEvent(string, ...trace.EventOption)   {}
func (s idsSpan) AddLink(trace.Link)                      {}
func (s idsSpan) RecordError(error, ...trace.EventOption) {}
func (s idsSpan) SetStatus(codes.Code, string)            {}
func (s idsSpan) SetName(string)                          {}
func (s idsSpan) SetAttributes(...attribute.KeyValue)     {}
func (s idsSpan) TracerProvider() trace.TracerProvider    { return s.provider }
