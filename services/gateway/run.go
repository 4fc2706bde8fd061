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
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/platform/telemetry"
)

// writeTimeout bounds a whole request on the public listener.
const writeTimeout = 30 * time.Second

// Server is a wired gateway: the public listener's handler (the webhook
// and liveness, nothing else) and the admin listener's (liveness,
// readiness, metrics, webhook-health). The two never share an address: the
// public one faces the internet, and what the admin endpoints say (stream
// depths, consumer names, the environment) is for operators only.
type Server struct {
	Webhook *Webhook
	Health  *Health
	public  *http.ServeMux
	admin   *http.ServeMux
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
	// NATS counts headers and data against the server's max_payload: the
	// body limit leaves room for the gateway's headers, checked once here,
	// and each message is checked against the server connected now.
	if wh.maxBody, err = BodyLimit(nc.MaxPayload()); err != nil {
		return nil, fmt.Errorf("gateway body limit: %w", err)
	}
	wh.payload = nc.MaxPayload
	h := &Health{cfg: cfg, nc: nc, js: js, now: time.Now}
	admin := http.NewServeMux()
	admin.HandleFunc("GET /api/stripe/webhook-health", h.webhookHealth)
	admin.HandleFunc("GET /healthz", live)
	admin.HandleFunc("GET /readyz", h.ready)
	admin.Handle("GET /metrics", tel.Metrics)
	public := http.NewServeMux()
	public.Handle("/webhooks/stripe", wh) // answers other methods 405 itself, counted
	public.HandleFunc("GET /healthz", live)
	public.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "only POST /webhooks/stripe is served here", "")
	})
	return &Server{Webhook: wh, Health: h, public: public, admin: admin}, nil
}

// ServeHTTP routes the public listener: POST /webhooks/stripe and GET
// /healthz; anything else is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.public.ServeHTTP(w, r) }

// Admin is the handler for GATEWAY_ADMIN_ADDR.
func (s *Server) Admin() http.Handler { return s.admin }

// Run reads configuration from getenv, serves until ctx is cancelled, then
// shuts down in order: stop intake (in-flight requests finish and get their
// PubAck), flush and close NATS, flush telemetry.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	base, err := service.Start(ctx, "gateway", cfg.LogLevel, getenv, stdout)
	if err != nil {
		return err
	}
	defer base.Close(ctx, &err)
	log, tel, stack := base.Log, base.Tel, &base.Stack
	cfg.NATS.Logger = log

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
	// The streams are switchyard migrate's: the gateway only checks they
	// are there as the catalogue says, and reports settings that differ
	// from what its environment asks for instead of applying them.
	drift, err := natsbus.Check(ctx, js, cfg.NATS)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	for _, d := range drift {
		log.WarnContext(ctx, "jetstream settings differ", "difference", d)
	}

	srv, err := New(cfg, nc, js, log, tel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway listen: %w", err)
	}
	aln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("gateway admin listen (GATEWAY_ADMIN_ADDR): %w", err)
	}
	servers := lifecycle.NewGroup(ctx)
	servers.Go("webhook listener", func(ctx context.Context) error {
		return lifecycle.Serve(ctx, newHTTPServer(srv, log), ln, cfg.ShutdownGrace)
	})
	servers.Go("admin listener", func(ctx context.Context) error {
		return lifecycle.Serve(ctx, newHTTPServer(srv.Admin(), log), aln, cfg.ShutdownGrace)
	})
	log.InfoContext(ctx, "gateway listening", "addr", ln.Addr().String(), "admin_addr", aln.Addr().String(),
		"body_limit", srv.Webhook.maxBody, "nats_max_payload", nc.MaxPayload(), "tracing", tel.Exporting, "config", cfg)
	err = servers.Wait()
	log.InfoContext(ctx, "gateway stopped")
	return err
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
