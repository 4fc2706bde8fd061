package telemetry_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/telemetry"
)

// TestIdsWithoutExport: with no OTLP endpoint a service's spans record
// nothing, yet carry the ids the SDK's default sampler would give them —
// a root is a new sampled trace; a child, local or from a traceparent,
// keeps its parent's trace id, flags and trace state under a span id of
// its own — and those ids are what travels on to the next service.
func TestIdsWithoutExport(t *testing.T) {
	tel := setup(t, nil)
	t.Cleanup(func() { shutdown(t, tel) })
	tr := tel.Tracer.Tracer("ids")

	ctx, root := tr.Start(context.Background(), "root", trace.WithAttributes())
	rsc := root.SpanContext()
	if !rsc.IsValid() || !rsc.IsSampled() || root.IsRecording() {
		t.Fatalf("root: valid=%v sampled=%v recording=%v, want a valid, sampled, unrecorded span", rsc.IsValid(), rsc.IsSampled(), root.IsRecording())
	}
	_, child := tr.Start(ctx, "child")
	csc := child.SpanContext()
	if csc.TraceID() != rsc.TraceID() || csc.SpanID() == rsc.SpanID() || !csc.SpanID().IsValid() {
		t.Errorf("child trace %s span %s under root trace %s span %s: want the root's trace and a new span", csc.TraceID(), csc.SpanID(), rsc.TraceID(), rsc.SpanID())
	}
	_, other := tr.Start(context.Background(), "other root")
	if other.SpanContext().TraceID() == rsc.TraceID() {
		t.Error("two roots share a trace id")
	}
	_, fresh := tr.Start(ctx, "new root", trace.WithNewRoot())
	if fresh.SpanContext().TraceID() == rsc.TraceID() {
		t.Error("WithNewRoot continued the parent's trace")
	}

	// A remote parent that is not sampled, with a trace state: both kept.
	in := nats.Header{}
	in.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	in.Set("tracestate", "vendor=value")
	_, remote := tr.Start(telemetry.Extract(context.Background(), in), "consume")
	got := remote.SpanContext()
	if got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.IsSampled() || got.TraceState().Get("vendor") != "value" || got.IsRemote() {
		t.Errorf("child of a remote parent: trace %s sampled=%v tracestate %q remote=%v, want the parent's trace, unsampled, its trace state, local",
			got.TraceID(), got.IsSampled(), got.TraceState().String(), got.IsRemote())
	}

	out := nats.Header{}
	rctx := trace.ContextWithSpan(context.Background(), remote)
	telemetry.Inject(rctx, out)
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + got.SpanID().String() + "-00"; out.Get("traceparent") != want {
		t.Errorf("traceparent sent on = %q, want %q", out.Get("traceparent"), want)
	}
	if out.Get("tracestate") != "vendor=value" {
		t.Errorf("tracestate sent on = %q, want vendor=value", out.Get("tracestate"))
	}
	for _, s := range []trace.Span{root, child, other, fresh, remote} {
		s.SetAttributes()
		s.End()
	}
}

// TestIdsWithoutExportUnderASampler: a configured sampler is the SDK's to
// apply, so its decision (here: never) shows in the ids.
func TestIdsWithoutExportUnderASampler(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off") // the SDK reads it from the process environment
	tel := setup(t, map[string]string{"OTEL_TRACES_SAMPLER": "always_off"})
	t.Cleanup(func() { shutdown(t, tel) })
	_, span := tel.Tracer.Tracer("ids").Start(context.Background(), "root")
	defer span.End()
	if sc := span.SpanContext(); !sc.IsValid() || sc.IsSampled() {
		t.Errorf("root under always_off: valid=%v sampled=%v, want a valid, unsampled span", sc.IsValid(), sc.IsSampled())
	}
}
