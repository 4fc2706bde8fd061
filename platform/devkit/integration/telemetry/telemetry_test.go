package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/telemetry"
)

func setup(t *testing.T, env map[string]string) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), "telemetry-test", config.MapEnv(env))
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return tel
}

func shutdown(t *testing.T, tel *telemetry.Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestSetupExporting checks when traces leave the process. With an endpoint
// the exporter is only built here; no span is recorded, so nothing is sent.
func TestSetupExporting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want bool
		ids  bool // spans have trace ids (for headers, logs, timelines) even when not exported
	}{
		{name: "empty env", env: nil, want: false, ids: true},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_METRICS_EXPORTER": "none"}, want: true, ids: true},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, want: true, ids: true},
		{name: "sdk disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, want: false, ids: false},
		{name: "traces exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, want: false, ids: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tel := setup(t, tt.env)
			if tel.Exporting != tt.want {
				t.Errorf("Exporting = %v, want %v", tel.Exporting, tt.want)
			}
			_, span := tel.Tracer.Tracer("t").Start(context.Background(), "op")
			if got := span.SpanContext().IsValid(); got != tt.ids {
				t.Errorf("span context valid = %v, want %v (only a disabled SDK makes invalid spans)", got, tt.ids)
			}
			span.End()
			if tel.Meter == nil || tel.Metrics == nil {
				t.Fatal("Setup left Meter or Metrics nil")
			}
			shutdown(t, tel)
		})
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	tel := setup(t, nil)
	counter, err := tel.Meter.Meter("telemetry_test").Int64Counter("switchyard_test_events",
		metric.WithDescription("Events seen by the test."))
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3, metric.WithAttributes(attribute.String("type", "invoice.paid")))
	counter.Add(context.Background(), 2, metric.WithAttributes(attribute.String("type", "invoice.paid")))

	srv := httptest.NewServer(tel.Metrics)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	text := string(body)
	for _, want := range []string{
		"# TYPE switchyard_test_events_total counter",
		`switchyard_test_events_total{type="invoice.paid"} 5`,
		"go_goroutines",                 // the Go collector is registered
		`service_name="telemetry-test"`, // the resource, in target_info
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics does not contain %q:\n%s", want, grepLines(text, "switchyard_test", "target_info"))
		}
	}
	shutdown(t, tel)
}

func TestServiceNameFromEnv(t *testing.T) {
	t.Parallel()
	tel := setup(t, map[string]string{"OTEL_SERVICE_NAME": "renamed"})
	rec := httptest.NewRecorder()
	tel.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `service_name="renamed"`) {
		t.Errorf("OTEL_SERVICE_NAME not used:\n%s", grepLines(rec.Body.String(), "target_info"))
	}
	shutdown(t, tel)
}

// grepLines returns the lines of text containing any of subs, for failure
// messages that would otherwise print the whole scrape.
func grepLines(text string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// sdkSpan starts a recording span on a real SDK tracer provider.
func sdkSpan(t *testing.T) (context.Context, trace.Span) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("telemetry_test").Start(context.Background(), "publish")
}

func TestInjectExtract(t *testing.T) {
	t.Parallel()
	tel := setup(t, nil) // installs the W3C propagator
	t.Cleanup(func() { shutdown(t, tel) })
	ctx, span := sdkSpan(t)
	defer span.End()
	sc := span.SpanContext()

	h := nats.Header{}
	telemetry.Inject(ctx, h)
	tp := h.Get("traceparent")
	if tp == "" {
		t.Fatalf("no traceparent header after Inject: %v", h)
	}
	if !strings.Contains(tp, sc.TraceID().String()) || !strings.Contains(tp, sc.SpanID().String()) {
		t.Fatalf("traceparent %q does not carry trace %s span %s", tp, sc.TraceID(), sc.SpanID())
	}

	got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), h))
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() {
		t.Fatalf("extracted trace %s span %s, want %s %s", got.TraceID(), got.SpanID(), sc.TraceID(), sc.SpanID())
	}
	if !got.IsRemote() || !got.IsSampled() {
		t.Errorf("extracted span context remote=%v sampled=%v, want both", got.IsRemote(), got.IsSampled())
	}

	if empty := trace.SpanContextFromContext(telemetry.Extract(context.Background(), nats.Header{})); empty.IsValid() {
		t.Errorf("Extract from empty headers gave a valid span context %v", empty)
	}
}

// TestTraceContextOverNATS sends the injected headers through a real broker:
// a consumer's span must join the publisher's trace.
func TestTraceContextOverNATS(t *testing.T) {
	t.Parallel()
	tel := setup(t, nil)
	t.Cleanup(func() { shutdown(t, tel) })
	nc, _ := testkit.NATS(t).Connect(t)
	sub, err := nc.SubscribeSync("billing.trace")
	if err != nil {
		t.Fatal(err)
	}

	ctx, span := sdkSpan(t)
	defer span.End()
	msg := nats.NewMsg("billing.trace")
	telemetry.Inject(ctx, msg.Header)
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("traceparent") == "" {
		t.Fatalf("traceparent lost on the wire: %v", got.Header)
	}
	rc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), got.Header))
	if rc.TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("consumer sees trace %s, want %s", rc.TraceID(), span.SpanContext().TraceID())
	}
}

func TestHeaderCarrier(t *testing.T) {
	t.Parallel()
	c := telemetry.HeaderCarrier(nats.Header{"traceparent": {"a", "b"}})
	if c.Get("traceparent") != "a" {
		t.Errorf("Get = %q, want the first value", c.Get("traceparent"))
	}
	if c.Get("Traceparent") != "" {
		t.Error("Get is case-insensitive; NATS headers are case-sensitive")
	}
	c.Set("tracestate", "k=v")
	c.Set("traceparent", "c")
	if c.Get("traceparent") != "c" || len(c["traceparent"]) != 1 {
		t.Errorf("Set did not replace: %v", c["traceparent"])
	}
	if keys := c.Keys(); len(keys) != 2 {
		t.Errorf("Keys = %v, want 2", keys)
	}
}
