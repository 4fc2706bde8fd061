// Package telemetry sets up OpenTelemetry traces and metrics for one service,
// configured by the specification's OTEL_* environment variables.
//
// Traces are exported only when the standard OTLP variables name an
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
// the specification's default of localhost is deliberately not assumed.
// Without one, spans are still created and their W3C context still rides in
// NATS headers, so every log line, timeline entry and dead letter carries a
// trace id; they are just not sent anywhere, nor recorded (see idsOnly),
// unless OTEL_TRACES_SAMPLER asks the SDK to decide. OTEL_SDK_DISABLED=true turns
// tracing and OTLP export off entirely.
// Metrics are always served in the Prometheus text format on /metrics and are
// also pushed by OTLP when an endpoint is configured.
//
// OTEL_EXPORTER_OTLP_PROTOCOL (or the per-signal
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
// which win) picks the transport: http/protobuf, the specification's default
// and the hub's since it first exported, or grpc. http/json, which the Go SDK
// has no exporter for, and any other value fail Setup with the variable's
// name. Both transports take the same endpoint style,
// OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 for gRPC or
// http://collector:4318 for HTTP (the HTTP exporter appends /v1/traces and
// /v1/metrics; a per-signal HTTP endpoint is used as given).
//
// Setup reads the variables that decide what is built (which exporters, which
// transport, which propagators, the service name) through its getenv. The
// SDK reads the rest itself from the process environment, as the
// specification defines them: the exporters' OTEL_EXPORTER_OTLP_[TRACES_|
// METRICS_]ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
// _CLIENT_KEY, _CLIENT_CERTIFICATE and _INSECURE; OTEL_RESOURCE_ATTRIBUTES;
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; OTEL_BSP_*; the span
// limits; OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT. A
// service's getenv is the process environment (switchyard dev passes the
// OTEL_* variables through unchanged), so the two agree.
//
// Providers are returned, never installed globally (except the propagator,
// which Inject and Extract use), so several services can share one process
// in `switchyard dev` and each keeps its own service.name.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
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

// The OTLP transports (OTEL_EXPORTER_OTLP_PROTOCOL's values).
const (
	protocolHTTP = "http/protobuf"
	protocolGRPC = "grpc"
)

// Setup builds providers for service. getenv supplies the OTEL_* variables
// this package decides on; the SDK and its OTLP exporters read the rest of
// the standard settings themselves (see the package doc). Every variable
// Setup reads is validated: an unknown value is an error naming it.
func Setup(ctx context.Context, service string, getenv func(string) string) (*Telemetry, error) {
	// Every decision first, so a bad value fails before anything is built.

	// the OTLP transport, grpc or http/protobuf (default http/protobuf)
	general := getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	if _, err := protocol("OTEL_EXPORTER_OTLP_PROTOCOL", general, ""); err != nil { // a typo is an error even where both signals override it
		return nil, err
	}
	// the OTLP transport for traces (default OTEL_EXPORTER_OTLP_PROTOCOL's)
	traceProto, err := protocol("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), general)
	if err != nil {
		return nil, err
	}
	// the OTLP transport for metrics (default OTEL_EXPORTER_OTLP_PROTOCOL's)
	metricProto, err := protocol("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"), general)
	if err != nil {
		return nil, err
	}
	traceExport, err := exporters("OTEL_TRACES_EXPORTER", getenv("OTEL_TRACES_EXPORTER"), "otlp", "none") // otlp (default) or none: no trace export
	if err != nil {
		return nil, err
	}
	// otlp (default), prometheus (no OTLP push; /metrics is served regardless) or none: no OTLP metrics export
	metricExport, err := exporters("OTEL_METRICS_EXPORTER", getenv("OTEL_METRICS_EXPORTER"), "otlp", "prometheus", "none")
	if err != nil {
		return nil, err
	}
	prop, err := propagators(getenv("OTEL_PROPAGATORS")) // tracecontext, baggage or none, comma-separated (default tracecontext)
	if err != nil {
		return nil, err
	}
	// OTEL_SDK_DISABLED: true (any case): no tracing at all, not even span ids, and no OTLP export
	disabled := strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true")

	// the SDK's sampler (always_on, traceidratio, parentbased_…; the SDK reads it); unset: spans that are not exported are not recorded either, and carry the ids of the default, parent-based always-on
	sampler := getenv("OTEL_TRACES_SAMPLER")

	otel.SetTextMapPropagator(prop)

	res, err := newResource(ctx, service, getenv("OTEL_SERVICE_NAME")) // the service name on spans and metrics (default: the service's own, or service.name in OTEL_RESOURCE_ATTRIBUTES)
	if err != nil {
		return nil, err
	}

	t := &Telemetry{}
	// the OTLP endpoint traces are exported to (either variable), a URL for either transport (http://collector:4318, or :4317 for grpc); unset: spans get ids, nothing is exported
	endpoint := getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if !disabled && endpoint && traceExport["otlp"] {
		exp, err := traceExporter(ctx, traceProto)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter (%s): %w", traceProto, err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.Tracer, t.Exporting = tp, true
		t.shutdown = append(t.shutdown, tp.Shutdown)
	} else if !disabled && sampler == "" {
		// Ids without export, and without recording what nobody reads.
		t.Tracer = idsOnly{}
	} else if !disabled {
		// Ids without export, under the configured sampler: the SDK with no
		// span processor, so ended spans are dropped.
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
		return nil, errors.Join(fmt.Errorf("prometheus exporter: %w", err), t.Shutdown(ctx))
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(promExp), sdkmetric.WithResource(res)}
	// the OTLP endpoint metrics are also exported to (either variable), a URL as for traces; /metrics serves them regardless
	metricsEndpoint := getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
	if !disabled && metricsEndpoint && metricExport["otlp"] {
		mexp, err := metricExporter(ctx, metricProto)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("otlp metric exporter (%s): %w", metricProto, err), t.Shutdown(ctx))
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	t.Meter = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)
	t.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return t, nil
}

// protocol returns the transport a signal uses: its own variable's value
// (named name), else the general OTEL_EXPORTER_OTLP_PROTOCOL's, else
// http/protobuf, the specification's default.
func protocol(name, signal, general string) (string, error) {
	v := strings.TrimSpace(signal)
	if v == "" {
		name, v = "OTEL_EXPORTER_OTLP_PROTOCOL", strings.TrimSpace(general)
	}
	switch v {
	case "", protocolHTTP:
		return protocolHTTP, nil
	case protocolGRPC:
		return protocolGRPC, nil
	case "http/json":
		return "", fmt.Errorf("%s=http/json: the Go OpenTelemetry SDK has no OTLP/JSON exporter; use http/protobuf or grpc", name)
	default:
		return "", fmt.Errorf("%s=%q: want http/protobuf or grpc", name, v)
	}
}

// exporters parses an OTEL_*_EXPORTER list (comma-separated, the
// specification's form) against the values the hub supports. Empty means
// otlp, the specification's default; none may not be combined.
func exporters(name, v string, allowed ...string) (map[string]bool, error) {
	if strings.TrimSpace(v) == "" {
		return map[string]bool{"otlp": true}, nil
	}
	set := map[string]bool{}
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		ok := false
		for _, a := range allowed {
			ok = ok || e == a
		}
		if !ok {
			return nil, fmt.Errorf("%s=%q: %q is not supported; want a comma-separated list of %s", name, v, e, strings.Join(allowed, ", "))
		}
		set[e] = true
	}
	if set["none"] && len(set) > 1 {
		return nil, fmt.Errorf("%s=%q: none cannot be combined with another exporter", name, v)
	}
	return set, nil
}

// propagators parses OTEL_PROPAGATORS. The default is W3C trace context
// alone, not the specification's tracecontext,baggage: baggage is
// free-form data that, once accepted, would ride into every NATS message
// and downstream service, and nothing in the hub reads it. Set
// tracecontext,baggage to carry it; b3, jaeger, xray and ottrace need
// contrib propagators the hub does not build in and are refused.
func propagators(v string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(v) == "" {
		return propagation.TraceContext{}, nil
	}
	var ps []propagation.TextMapPropagator
	seen := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if seen[p] {
			continue
		}
		seen[p] = true
		switch p {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		case "none":
		default:
			return nil, fmt.Errorf("OTEL_PROPAGATORS=%q: %q is not supported; want a comma-separated list of tracecontext, baggage or none", v, p)
		}
	}
	if seen["none"] && len(seen) > 1 {
		return nil, fmt.Errorf("OTEL_PROPAGATORS=%q: none cannot be combined with another propagator", v)
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}

// newResource describes the service: the SDK's own attributes, service.name
// (the hub's default below OTEL_RESOURCE_ATTRIBUTES, which the SDK reads,
// below OTEL_SERVICE_NAME, as the specification orders them).
func newResource(ctx context.Context, service, serviceName string) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME from the process environment
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry resource (OTEL_RESOURCE_ATTRIBUTES is key=value,… with values percent-encoded): %w", err)
	}
	if serviceName != "" {
		if res, err = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(serviceName))); err != nil {
			return nil, fmt.Errorf("telemetry resource: %w", err)
		}
	}
	return res, nil
}

// traceExporter builds the OTLP span exporter for proto; it reads its
// endpoint, headers, TLS, compression and timeout from the environment.
func traceExporter(ctx context.Context, proto string) (sdktrace.SpanExporter, error) {
	if proto == protocolGRPC {
		return otlptracegrpc.New(ctx)
	}
	return otlptracehttp.New(ctx)
}

// metricExporter is traceExporter for metrics.
func metricExporter(ctx context.Context, proto string) (sdkmetric.Exporter, error) {
	if proto == protocolGRPC {
		return otlpmetricgrpc.New(ctx)
	}
	return otlpmetrichttp.New(ctx)
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
