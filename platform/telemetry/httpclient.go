package telemetry

import (
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// HTTPClient returns an http.Client whose requests become client spans
// (HTTP semantic conventions: the method as the span name,
// http.request.method, server.address, server.port,
// http.response.status_code, and peer.service naming the vendor). The URL's
// path and query are not recorded: a Slack webhook's path is its
// credential. Trace context is not sent to the vendor. A request made
// outside any span starts no trace of its own.
func HTTPClient(tp trace.TracerProvider, base *http.Client, peer string) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &clientTransport{next: next, tracer: tp.Tracer("github.com/switchyard/switchyard/platform/telemetry"), peer: peer}
	return c
}

type clientTransport struct {
	next   http.RoundTripper
	tracer trace.Tracer
	peer   string
}

func (t *clientTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return t.next.RoundTrip(r)
	}
	host, port := r.URL.Hostname(), r.URL.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[r.URL.Scheme]
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.String("server.address", host),
		attribute.String("peer.service", t.peer),
	}
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	if ip := net.ParseIP(host); ip != nil {
		attrs = append(attrs, attribute.String("network.peer.address", host))
	}
	ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	defer span.End()
	resp, err := t.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "request failed")
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}
