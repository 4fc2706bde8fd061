package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchyard/switchyard/platform/logging"
)

// decode parses the single JSON record in buf.
func decode(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1:\n%s", len(lines), buf)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("log line is not JSON: %v\n%s", err, lines[0])
	}
	return rec
}

func TestNewAddsCorrelationIDs(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	ctx := logging.WithRequestID(context.Background(), "req_123")
	ctx = logging.WithEventID(ctx, "evt_1NG8Du2eZvKYlo2CUI79vXWy")
	ctx = logging.WithCustomerID(ctx, "cus_9s6XKzkNRiz8i3")
	ctx, span := tp.Tracer("logging_test").Start(ctx, "op")
	defer span.End()
	sc := span.SpanContext()

	var buf bytes.Buffer
	logging.New(&buf, "gateway", slog.LevelInfo).InfoContext(ctx, "accepted", "status", 200)
	rec := decode(t, &buf)

	want := map[string]any{
		"msg":         "accepted",
		"level":       "INFO",
		"service":     "gateway",
		"status":      float64(200),
		"request_id":  "req_123",
		"event_id":    "evt_1NG8Du2eZvKYlo2CUI79vXWy",
		"customer_id": "cus_9s6XKzkNRiz8i3",
		"trace_id":    sc.TraceID().String(),
		"span_id":     sc.SpanID().String(),
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v", k, rec[k], v)
		}
	}
	if logging.RequestID(ctx) != "req_123" {
		t.Errorf("RequestID = %q, want req_123", logging.RequestID(ctx))
	}
}

func TestNewWithoutContextValues(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logging.New(&buf, "gateway", slog.LevelInfo).InfoContext(context.Background(), "plain")
	rec := decode(t, &buf)
	for _, k := range []string{"request_id", "event_id", "customer_id", "trace_id", "span_id"} {
		if _, ok := rec[k]; ok {
			t.Errorf("%s present without a value in the context: %v", k, rec[k])
		}
	}
	if got := logging.RequestID(context.Background()); got != "" {
		t.Errorf("RequestID of empty context = %q", got)
	}
}

// TestNewKeepsIDsThroughWith checks the ids survive a derived logger, which
// wraps the handler again.
func TestNewKeepsIDsThroughWith(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := logging.New(&buf, "switchyard", slog.LevelInfo).With("component", "projector").WithGroup("g")
	log.InfoContext(logging.WithEventID(context.Background(), "evt_1"), "projected", "n", 1)
	rec := decode(t, &buf)
	if rec["component"] != "projector" || rec["service"] != "switchyard" {
		t.Fatalf("derived logger lost its attributes: %v", rec)
	}
	if !strings.Contains(buf.String(), `"event_id":"evt_1"`) {
		t.Fatalf("derived logger lost event_id: %s", &buf)
	}
}

func TestNewLevel(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := logging.New(&buf, "gateway", slog.LevelWarn)
	log.Info("dropped")
	log.Warn("kept")
	if rec := decode(t, &buf); rec["msg"] != "kept" {
		t.Fatalf("logged %v, want only the warning", rec)
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want slog.Level
	}{
		{name: "debug", in: "debug", want: slog.LevelDebug},
		{name: "info", in: "info", want: slog.LevelInfo},
		{name: "warn", in: "warn", want: slog.LevelWarn},
		{name: "upper case", in: "ERROR", want: slog.LevelError},
		{name: "empty is info", in: "", want: slog.LevelInfo},
		{name: "unknown is info", in: "verbose", want: slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := logging.ParseLevel(tt.in); got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	const leak = "LEAKED-VALUE"
	tests := []struct {
		name string
		attr slog.Attr
		want string // the attribute as JSON, without braces
	}{
		{name: "secret", attr: slog.String("webhook_secret", leak), want: `"webhook_secret":"[REDACTED]"`},
		{name: "token", attr: slog.String("access_token", leak), want: `"access_token":"[REDACTED]"`},
		{name: "password", attr: slog.String("db_password", leak), want: `"db_password":"[REDACTED]"`},
		{name: "authorization, any case", attr: slog.String("Authorization", "Bearer "+leak), want: `"Authorization":"[REDACTED]"`},
		{name: "signature header", attr: slog.String("Stripe-Signature", "t=1,v1="+leak), want: `"Stripe-Signature":"[REDACTED]"`},
		{name: "cookie", attr: slog.String("set_cookie", leak), want: `"set_cookie":"[REDACTED]"`},
		{name: "api key", attr: slog.String("hubspot_api_key", leak), want: `"hubspot_api_key":"[REDACTED]"`},
		{name: "non-string secret", attr: slog.Int("token", 123456), want: `"token":"[REDACTED]"`},
		{name: "email", attr: slog.String("email", "jenny.rosen@example.com"), want: `"email":"j***@example.com"`},
		{name: "suffixed email", attr: slog.String("customer_email", "jenny.rosen@example.com"), want: `"customer_email":"j***@example.com"`},
		{name: "email key any case", attr: slog.String("Email", "jenny.rosen@example.com"), want: `"Email":"j***@example.com"`},
		{name: "string body reduced to its size", attr: slog.String("body", `{"card":"4242"}`), want: `"body_bytes":15`},
		{name: "payload reduced", attr: slog.String("payload", leak), want: `"payload_bytes":12`},
		{name: "non-string data omitted", attr: slog.Any("data", map[string]string{"x": leak}), want: `"data":"[OMITTED]"`},
		{name: "bytes raw omitted", attr: slog.Any("raw", []byte(leak)), want: `"raw":"[OMITTED]"`},
		{name: "innocent key untouched", attr: slog.String("status", "ok"), want: `"status":"ok"`},
		{name: "id untouched", attr: slog.String("event_id", "evt_1"), want: `"event_id":"evt_1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			logging.New(&buf, "test", slog.LevelInfo).Info("m", tt.attr)
			out := buf.String()
			if strings.Contains(out, leak) || strings.Contains(out, "jenny.rosen") {
				t.Fatalf("record leaks the value: %s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("record %s does not contain %s", out, tt.want)
			}
		})
	}
}

// TestRedactInGroup checks nested attributes are redacted too.
func TestRedactInGroup(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logging.New(&buf, "test", slog.LevelInfo).Info("m",
		slog.Group("req", slog.String("authorization", "Bearer sk_live_x"), slog.String("email", "a.b@example.org")))
	out := buf.String()
	if strings.Contains(out, "sk_live_x") || strings.Contains(out, "a.b@") {
		t.Fatalf("grouped attributes leak: %s", out)
	}
	if !strings.Contains(out, `"req":{"authorization":"[REDACTED]","email":"a***@example.org"}`) {
		t.Fatalf("grouped attributes not redacted as expected: %s", out)
	}
}

func TestMaskEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "typical", in: "jenny.rosen@example.com", want: "j***@example.com"},
		{name: "one-letter local part", in: "a@b.co", want: "a***@b.co"},
		{name: "several @ keep the last domain", in: "x@y@example.com", want: "x***@example.com"},
		{name: "multi-byte first letter kept whole", in: "élodie@example.fr", want: "é***@example.fr"},
		{name: "empty local part", in: "@example.com", want: "***"},
		{name: "no @", in: "not-an-email", want: "***"},
		{name: "empty", in: "", want: "***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := logging.MaskEmail(tt.in); got != tt.want {
				t.Errorf("MaskEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactInsideSecretGroup(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "svc", slog.LevelInfo)
	log.Info("x", slog.Group("stripe_secret", "value", "whsec_leak"))
	if strings.Contains(buf.String(), "whsec_leak") {
		t.Fatalf("value inside a secret-named group leaked: %s", buf.String())
	}
}
