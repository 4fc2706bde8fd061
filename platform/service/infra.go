package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
)

// Postgres opens the pool at url (closed after the service's other parts)
// and migrates the done-effects ledger every consuming service keeps.
func (b *Base) Postgres(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, url, postgres.Tracer(b.Tel.Tracer))
	if err != nil {
		return nil, err
	}
	b.Stack.Push("postgres", func(context.Context) error { pool.Close(); return nil })
	if err := ledger.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	b.pool = pool
	return pool, nil
}

// NATS connects with o (logging through the service's logger), drains the
// connection on close, and checks that the hub's streams and the named
// durable consumers (the service's own) exist as natsbus's catalogue says
// (natsbus.Check). It creates and changes nothing — that is `switchyard
// migrate`'s job — and returns an error saying to run it when something is
// missing or incompatible; stream settings that differ from what o's
// environment asks for are logged as warnings, not applied.
func (b *Base) NATS(ctx context.Context, o natsbus.Options, consumers ...string) (*nats.Conn, jetstream.JetStream, error) {
	o.Logger = b.Log
	nc, err := natsbus.Connect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	b.Stack.Push("nats", func(context.Context) error { return nc.Drain() })
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	drift, err := natsbus.Check(ctx, js, o, consumers...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: %w", err)
	}
	for _, d := range drift {
		b.Log.WarnContext(ctx, "jetstream settings differ", "difference", d)
	}
	b.nc = nc
	return nc, js, nil
}

// Serve runs the service's parts (its consumers) together with its admin
// listener on addr — /healthz, /readyz (NATS connected, PostgreSQL
// answering, when the service opened them), /metrics — until ctx is
// cancelled or a part fails, which stops the rest. The listener has every
// timeout (lifecycle.Harden): it is an admin port, but a stuck scraper must
// not pile up connections either.
func (b *Base) Serve(ctx context.Context, addr string, parts map[string]func(context.Context) error) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		switch {
		case b.nc != nil && !b.nc.IsConnected():
			plain(w, http.StatusServiceUnavailable, "nats disconnected")
		case b.pool != nil && b.pool.Ping(pctx) != nil:
			plain(w, http.StatusServiceUnavailable, "postgres unreachable")
		default:
			plain(w, http.StatusOK, "ready")
		}
	})
	mux.Handle("GET /metrics", b.Tel.Metrics)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	b.Log.InfoContext(ctx, "running", "addr", ln.Addr().String())
	g := lifecycle.NewGroup(ctx)
	g.Go("http", func(ctx context.Context) error {
		srv := lifecycle.Harden(&http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(b.Log.Handler(), slog.LevelWarn)})
		return lifecycle.Serve(ctx, srv, ln, 5*time.Second)
	})
	names := make([]string, 0, len(parts))
	for name := range parts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g.Go(name, parts[name])
	}
	return g.Wait()
}

func plain(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, s+"\n")
}
