package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/telemetry"
)

func TestHTTPClientSpans(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			t.Error("trace context sent to the vendor")
		}
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c := telemetry.HTTPClient(tp, nil, "slack")

	// Outside a span: no trace of its own.
	resp, err := c.Get(srv.URL + "/services/T000/B000/secretpath")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans without a parent, want 0", n)
	}

	ctx, parent := tp.Tracer("t").Start(context.Background(), "handle")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/services/T000/B000/secretpath?token=x", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	var got sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			got = s
		}
	}
	if got == nil || got.Name() != "POST" || got.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("client span = %+v, want POST under the handler span", got)
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range got.Attributes() {
		attrs[a.Key] = a.Value
		if strings.Contains(a.Value.String(), "secretpath") || strings.Contains(a.Value.String(), "token=") {
			t.Errorf("attribute %s records the URL's path or query: %s", a.Key, a.Value.String())
		}
	}
	if attrs["http.request.method"].AsString() != "POST" || attrs["peer.service"].AsString() != "slack" ||
		attrs["http.response.status_code"].AsInt64() != 429 || attrs["server.address"].AsString() != "127.0.0.1" {
		t.Errorf("attributes = %v", attrs)
	}
}
