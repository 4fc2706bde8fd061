// Package telemetry sets up OpenTelemetry traces and metrics for one service.
//
// Traces are exported only when the standard OTLP variables name an
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
// Without one, spans are still created and their W3C context still rides in
// NATS headers, so every log line, timeline entry and dead letter carries a
// trace id; they are just not sent anywhere. OTEL_SDK_DISABLED=true turns
// tracing off entirely. Sampling follows OTEL_TRACES_SAMPLER /
// OTEL_TRACES_SAMPLER_ARG as the SDK defines them.
// Metrics are always served in the Prometheus text format on /metrics and are
// also pushed by OTLP when an endpoint is configured.
//
// Providers are returned, never installed globally (except the W3C
// propagator), so several services can share one process in `switchyard dev`
// and each keeps its own service.name.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry holds one service's providers and its metrics endpoint.
type Telemetry struct {
	Tracer  trace.TracerProvider
	Meter   metric.MeterProvider
	Metrics http.Handler // Prometheus scrape handler
	// Exporting reports whether traces leave the process.
	Exporting bool

	shutdown []func(context.Context) error
}

// Setup builds providers for service. getenv supplies the OTEL_* variables
// this package decides on; the OTLP exporters read the rest of the standard
// OTEL_EXPORTER_OTLP_* settings themselves.
func Setup(ctx context.Context, service string, getenv func(string) string) (*Telemetry, error) {
	// W3C trace context only: baggage is free-form data that would ride
	// into every NATS message and downstream service.
	otel.SetTextMapPropagator(propagation.TraceContext{})

	name := service
	// OTEL_SERVICE_NAME: the service name on spans and metrics (default: the service's own).
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		name = v
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(name)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	t := &Telemetry{}
	disabled := getenv("OTEL_SDK_DISABLED") == "true" // true: no tracing at all, not even span ids
	// the OTLP/HTTP endpoint traces are exported to (either variable); unset: spans get ids, nothing is exported
	endpoint := getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if !disabled && endpoint && getenv("OTEL_TRACES_EXPORTER") != "none" { // none: no trace export
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.Tracer, t.Exporting = tp, true
		t.shutdown = append(t.shutdown, tp.Shutdown)
	} else if !disabled {
		// Ids without export: no span processor, so ended spans are dropped.
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res))
		t.Tracer = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	} else {
		t.Tracer = noop.NewTracerProvider()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(promExp), sdkmetric.WithResource(res)}
	// the OTLP/HTTP endpoint metrics are also exported to (either variable); /metrics serves them regardless
	metricsEndpoint := getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
	if !disabled && metricsEndpoint && getenv("OTEL_METRICS_EXPORTER") != "none" { // none: no metrics export
		mexp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp metric exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	t.Meter = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)
	t.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return t, nil
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// HeaderCarrier adapts NATS message headers to the OpenTelemetry text-map
// carrier, so W3C trace context rides in `traceparent`/`tracestate` headers.
// NATS headers are case-sensitive; the W3C keys are lower-case.
type HeaderCarrier nats.Header

// Get returns the first value for key.
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces key's values with value.
func (c HeaderCarrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the header names.
func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Inject writes the trace context of ctx into h.
func Inject(ctx context.Context, h nats.Header) {
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(h))
}

// Extract returns ctx with the remote trace context found in h.
func Extract(ctx context.Context, h nats.Header) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier(h))
}
