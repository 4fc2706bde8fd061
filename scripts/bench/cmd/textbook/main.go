// Command textbook is the baseline the gateway is measured against: the
// Stripe webhook handler as the documentation teaches it.
//
// POST /webhooks/stripe reads the body (at most 1 MiB), verifies it with
// stripe-go's webhook.ConstructEventWithOptions, publishes it synchronously
// to JetStream subject stripe.events.<type> with Nats-Msg-Id set to the event
// id, and answers 200 only after the PubAck: 400 when verification fails, 503
// when the publish fails. GET /readyz answers 200 once serving, which is
// after the NATS connection is up and the STRIPE stream exists. With
// -pprof ADDR it serves Go's profiles (net/http/pprof) on ADDR, a listener
// of their own, so `make bench` can show where its CPU goes next to the
// gateway's (GATEWAY_PPROF, on the gateway's admin listener).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripestream"
)

const maxBodyBytes = 1 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "textbook:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("textbook", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18081", "HTTP listen address")
	natsURL := fs.String("nats", orDefault(getenv("NATS_URL"), nats.DefaultURL), "NATS server URL (env NATS_URL)")
	secret := fs.String("secret", getenv("STRIPE_WEBHOOK_SECRET"), "Stripe webhook signing secret (env STRIPE_WEBHOOK_SECRET)")
	pprofAddr := fs.String("pprof", "", "serve /debug/pprof/ on this address too (empty: not at all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("-secret (or STRIPE_WEBHOOK_SECRET) is required")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	nc, err := nats.Connect(*natsURL, nats.Name("textbook"))
	if err != nil {
		return fmt.Errorf("connect nats: %w", err)
	}
	defer func() { err = errors.Join(err, nc.Drain()) }()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := stripestream.Ensure(ctx, js); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/stripe", &handler{js: js, secret: *secret, log: logger})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	serveErr := make(chan error, 2)
	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen pprof: %w", err)
		}
		// The handlers pprof's init put on http.DefaultServeMux.
		psrv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		defer psrv.Close()
		go func() { serveErr <- psrv.Serve(pln) }()
		fmt.Fprintf(stdout, "textbook pprof addr=%s\n", pln.Addr())
	}
	fmt.Fprintf(stdout, "textbook ready addr=%s\n", ln.Addr())
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// handler is the textbook webhook endpoint: verify, publish, acknowledge.
type handler struct {
	js     jetstream.JetStream
	secret string
	log    *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	event, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), h.secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		http.Error(w, "invalid signature", http.StatusBadRequest)
		return
	}
	msg := &nats.Msg{
		Subject: stripestream.SubjectPrefix + string(event.Type),
		Data:    body,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{event.ID}},
	}
	if _, err := h.js.PublishMsg(r.Context(), msg); err != nil {
		h.log.WarnContext(r.Context(), "publish failed", "event_id", event.ID, "error", err)
		http.Error(w, "publish failed", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
