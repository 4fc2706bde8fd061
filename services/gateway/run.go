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
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/platform/telemetry"
)

// writeTimeout bounds a whole request on the public listener: the
// default every listener gets from lifecycle.Harden.
const writeTimeout = lifecycle.DefaultWriteTimeout

// Server is a wired gateway: the webhook handler and the webhook-health
// report, served by the route table of routes.
type Server struct {
	Webhook *Webhook
	Health  *Health
	pprof   bool // GATEWAY_PPROF: /debug/pprof/ on the admin listener
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
	return &Server{Webhook: wh, Health: &Health{cfg: cfg, nc: nc, js: js, now: time.Now}, pprof: cfg.Pprof}, nil
}

// routes is the gateway's route table: the shared routes (liveness on both
// listeners, readiness and metrics on the admin one) and its own. The two
// listeners never share an address: the public one faces the internet and
// serves the webhook and liveness, nothing else; what the admin one says
// (stream depths, consumer names, the environment) is for operators only.
func (s *Server) routes(base *service.Base) []service.Route {
	own := []service.Route{
		// Answers other methods 405 itself, counted.
		{Listener: service.Public, Path: "/webhooks/stripe", Handler: s.Webhook},
		{Listener: service.Public, Path: "/", Handler: http.HandlerFunc(notFound)},
		{Listener: service.Admin, Method: http.MethodGet, Path: "/api/stripe/webhook-health", Handler: http.HandlerFunc(s.Health.webhookHealth)},
	}
	if s.pprof {
		own = append(own, pprofRoutes()...)
	}
	return base.Routes(own...)
}

// pprofRoutes are net/http/pprof's handlers, on the admin listener only
// (GATEWAY_PPROF): a profile shows the code's paths and costs CPU while it
// runs, which is no business of the internet's. Rows, not pprof's init on
// http.DefaultServeMux, which no listener serves. Every method, as pprof
// registers them (symbol takes POST). A CPU profile or trace may outlast
// the listener's write timeout: pprof extends its own deadline by the
// seconds asked for.
func pprofRoutes() []service.Route {
	return []service.Route{
		{Listener: service.Admin, Path: "/debug/pprof/", Handler: http.HandlerFunc(pprof.Index)}, // and the named profiles: heap, goroutine, allocs, …
		{Listener: service.Admin, Path: "/debug/pprof/cmdline", Handler: http.HandlerFunc(pprof.Cmdline)},
		{Listener: service.Admin, Path: "/debug/pprof/profile", Handler: http.HandlerFunc(pprof.Profile)},
		{Listener: service.Admin, Path: "/debug/pprof/symbol", Handler: http.HandlerFunc(pprof.Symbol)},
		{Listener: service.Admin, Path: "/debug/pprof/trace", Handler: http.HandlerFunc(pprof.Trace)},
	}
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "only POST /webhooks/stripe is served here", "")
}

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

	// Ready when a webhook would be stored now: connected, and the intake
	// stream exists.
	base.ReadyWhen(service.NATSConnected(nc))
	base.ReadyWhen(func(ctx context.Context) error {
		if _, err := js.Stream(ctx, natsbus.StreamStripe); err != nil {
			return fmt.Errorf("stream %s: %w", natsbus.StreamStripe, err)
		}
		return nil
	})
	srv, err := New(cfg, nc, js, log, tel)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "gateway starting", "body_limit", srv.Webhook.maxBody, "nats_max_payload", nc.MaxPayload(),
		"tracing", tel.Exporting, "config", cfg)
	err = base.ServeListeners(ctx, []service.Listener{
		{Name: service.Public, Addr: cfg.Addr, Grace: cfg.ShutdownGrace},
		{Name: service.Admin, Addr: cfg.AdminAddr, Grace: cfg.ShutdownGrace},
	}, srv.routes(base), nil)
	log.InfoContext(ctx, "gateway stopped")
	return err
}
