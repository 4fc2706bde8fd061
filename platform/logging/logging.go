// Package logging builds the JSON slog logger every service uses.
//
// Correlation fields (request_id, event_id, customer_id) travel in the context
// and are added to each record by the handler, together with trace_id and
// span_id from the active OpenTelemetry span, so call sites use the
// ...Context variants of slog and never repeat them.
//
// Redaction is a property of the handler, not a convention at call sites:
// attributes whose key names a secret are replaced, emails are masked and
// payload-like attributes are reduced to their size. Hazard: a secret logged
// under an innocent key (say "value") is not caught; use config.Secret for
// credentials, which redacts itself.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyEventID
	keyCustomerID
)

// WithRequestID returns ctx carrying the request id for log records.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, keyRequestID, id)
}

// WithEventID returns ctx carrying the Stripe (or domain) event id.
func WithEventID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, keyEventID, id)
}

// WithCustomerID returns ctx carrying the canonical customer id.
func WithCustomerID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, keyCustomerID, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string { s, _ := ctx.Value(keyRequestID).(string); return s }

// ParseLevel maps debug|info|warn|error to a slog level (info when unknown).
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// New returns a JSON logger writing to w at level, tagged with service.
func New(w io.Writer, service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: Redact})
	return slog.New(&contextHandler{Handler: h}).With("service", service)
}

// contextHandler adds correlation ids from the context to every record.
type contextHandler struct{ slog.Handler }

func (h *contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if v, ok := ctx.Value(keyRequestID).(string); ok && v != "" {
		r.AddAttrs(slog.String("request_id", v))
	}
	if v, ok := ctx.Value(keyEventID).(string); ok && v != "" {
		r.AddAttrs(slog.String("event_id", v))
	}
	if v, ok := ctx.Value(keyCustomerID).(string); ok && v != "" {
		r.AddAttrs(slog.String("customer_id", v))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &contextHandler{Handler: h.Handler.WithAttrs(as)}
}

func (h *contextHandler) WithGroup(name string) slog.Handler {
	return &contextHandler{Handler: h.Handler.WithGroup(name)}
}

// secretKeys are substrings of attribute keys whose values are never logged.
var secretKeys = []string{"secret", "token", "password", "passwd", "authorization", "signature", "api_key", "apikey", "cookie", "creds", "card"}

// payloadKeys are attribute keys whose values are replaced by their length.
var payloadKeys = map[string]bool{"body": true, "payload": true, "data": true, "raw": true}

// Redact is the slog ReplaceAttr rule: it removes secrets, masks emails and
// drops payloads. It is exported so other handlers (tests, CLIs) can share it.
func Redact(groups []string, a slog.Attr) slog.Attr {
	for _, g := range groups {
		if secretKey(strings.ToLower(g)) {
			return slog.String(a.Key, "[REDACTED]") // slog.Group("stripe_secret", "value", v)
		}
	}
	k := strings.ToLower(a.Key)
	switch {
	case payloadKeys[k]:
		if a.Value.Kind() == slog.KindString {
			return slog.Int(a.Key+"_bytes", len(a.Value.String()))
		}
		return slog.String(a.Key, "[OMITTED]")
	case k == "email" || strings.HasSuffix(k, "_email"):
		return slog.String(a.Key, MaskEmail(a.Value.String()))
	}
	if secretKey(k) {
		return slog.String(a.Key, "[REDACTED]")
	}
	return a
}

func secretKey(k string) bool {
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// MaskEmail keeps the first character of the local part and the domain:
// "jenny.rosen@example.com" → "j***@example.com". Anything that does not look
// like an email is masked whole.
func MaskEmail(e string) string {
	at := strings.LastIndexByte(e, '@')
	if at < 1 {
		return "***"
	}
	_, n := utf8.DecodeRuneInString(e) // a whole first character, not a byte of it
	return e[:n] + "***" + e[at:]
}
