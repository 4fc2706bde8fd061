// Package gateway is Switchyard's Stripe webhook intake: it verifies each
// webhook at the edge, validates the fields the hub routes on, and answers
// Stripe only after JetStream has stored the exact bytes it received.
//
// It has no database and makes no third-party call on the request path.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/telemetry"
)

// Server is a wired gateway: its HTTP handler and what it depends on.
type Server struct {
	Webhook *Webhook
	Health  *Health
	mux     *http.ServeMux
}

// New wires the gateway over an open NATS connection.
func New(cfg Config, nc *nats.Conn, js jetstream.JetStream, log *slog.Logger, tel *telemetry.Telemetry) (*Server, error) {
	m, err := newMetrics(tel.Meter)
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	wh, err := newWebhook(cfg, js, log, tel.Tracer, m, time.Now)
	if err != nil {
		return nil, err
	}
	h := &Health{cfg: cfg, nc: nc, js: js, now: time.Now}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/stripe", wh)
	mux.HandleFunc("GET /api/stripe/webhook-health", h.webhookHealth)
	mux.HandleFunc("GET /healthz", live)
	mux.HandleFunc("GET /readyz", h.ready)
	mux.Handle("GET /metrics", tel.Metrics)
	return &Server{Webhook: wh, Health: h, mux: mux}, nil
}

// ServeHTTP routes to the gateway's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Run reads configuration from getenv, serves until ctx is cancelled, then
// shuts down in order: stop intake (in-flight requests finish and get their
// PubAck), flush and close NATS, flush telemetry.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	log := logging.New(stdout, "gateway", logging.ParseLevel(cfg.LogLevel))
	cfg.NATS.Logger = log

	var stack lifecycle.Stack
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, stack.Close(sctx))
	}()

	tel, err := telemetry.Setup(ctx, "switchyard-gateway", getenv)
	if err != nil {
		return err
	}
	stack.Push("telemetry", tel.Shutdown)

	nc, err := natsbus.Connect(ctx, cfg.NATS)
	if err != nil {
		return err
	}
	stack.Push("nats", func(context.Context) error {
		if err := nc.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			nc.Close()
			return err
		}
		nc.Close()
		return nil
	})
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(8192),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := natsbus.Provision(ctx, js, cfg.NATS); err != nil {
		return err
	}

	srv, err := New(cfg, nc, js, log, tel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	log.InfoContext(ctx, "gateway listening", "addr", ln.Addr().String(), "tracing", tel.Exporting, "config", cfg)
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	err = lifecycle.Serve(ctx, hs, ln, cfg.ShutdownGrace)
	log.InfoContext(ctx, "gateway stopped", "error", err)
	return err
}
