package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric/noop"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/stripesig"
)

// ackedFuture is a PubAckFuture already resolved with a PubAck.
type ackedFuture struct {
	ok  chan *jetstream.PubAck
	msg *nats.Msg
}

func (f *ackedFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *ackedFuture) Err() <-chan error            { return nil }
func (f *ackedFuture) Msg() *nats.Msg               { return f.msg }

type instantPublisher struct{}

func (instantPublisher) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f := &ackedFuture{ok: make(chan *jetstream.PubAck, 1), msg: m}
	f.ok <- &jetstream.PubAck{Stream: "STRIPE", Sequence: 1}
	return f, nil
}

// BenchmarkWebhookHandler measures the handler's own work per request
// (verify, validate, build the message, answer) with a broker that acks at
// once, so the HTTP stack and NATS I/O are left out.
func BenchmarkWebhookHandler(b *testing.B) {
	for _, name := range []string{"customer.created", "invoice.paid"} {
		b.Run(name, func(b *testing.B) {
			body := testkit.StripeEvent(b, name)
			m, err := newMetrics(noop.NewMeterProvider())
			if err != nil {
				b.Fatal(err)
			}
			cfg := Config{Env: EnvDevelopment, Secrets: nil, Tolerance: stripesig.DefaultTolerance, PublishTimeout: time.Second}
			cfg.Secrets = append(cfg.Secrets, secretOf("whsec_benchmark_secret"))
			h, err := newWebhook(cfg, instantPublisher{}, slog.New(slog.DiscardHandler), tnoop.NewTracerProvider(), m, time.Now)
			if err != nil {
				b.Fatal(err)
			}
			header := stripesig.Sign(body, time.Now(), "whsec_benchmark_secret")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
				req.Header.Set("Stripe-Signature", header)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				_, _ = io.Copy(io.Discard, w.Body)
			}
		})
	}
}
