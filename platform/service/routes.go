package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/lifecycle"
)

// The listeners a route table names. Every service has Admin; a service
// that takes traffic from outside (the gateway's webhook) has Public too.
const (
	// Admin is for operators, probes and the scraper: liveness,
	// readiness, metrics, and what the service adds for operators.
	Admin = "admin"
	// Public faces the internet: liveness and only the routes the
	// service declares for it, so nothing operational leaks there.
	Public = "public"
)

// defaultGrace is how long a listener lets in-flight requests finish at
// shutdown unless its Listener says otherwise.
const defaultGrace = 5 * time.Second

// Route is one row of a process's route table: which listener serves it,
// its method and path, its handler.
type Route struct {
	// Listener is Admin, Public, or a listener of the service's own (the
	// projector's ops address), which none of the shared rows name.
	Listener string
	Method   string // empty: every method (the handler answers the others itself)
	Path     string
	Handler  http.Handler
}

// Routes returns the process's route table: the routes every service
// shares — liveness on each listener, readiness and metrics on Admin —
// followed by the service's own. Listeners are built from it alone (Mux).
func (b *Base) Routes(own ...Route) []Route {
	live := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { plain(w, http.StatusOK, "ok") })
	return append([]Route{
		{Listener: Admin, Method: http.MethodGet, Path: "/healthz", Handler: live},
		{Listener: Admin, Method: http.MethodGet, Path: "/readyz", Handler: http.HandlerFunc(b.ready)},
		{Listener: Admin, Method: http.MethodGet, Path: "/metrics", Handler: b.Tel.Metrics},
		{Listener: Public, Method: http.MethodGet, Path: "/healthz", Handler: live},
	}, own...)
}

// Mux builds listener's handler from routes: the rows naming it, nothing
// else (anything unmatched is net/http's 404 unless a row claims "/").
func Mux(routes []Route, listener string) *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range routes {
		if r.Listener != listener {
			continue
		}
		pattern := r.Path
		if r.Method != "" {
			pattern = r.Method + " " + r.Path
		}
		mux.Handle(pattern, r.Handler)
	}
	return mux
}

// Listener is an address one listener of the route table is served on.
type Listener struct {
	Name  string        // the Route.Listener its routes name
	Addr  string        // host:port; port 0 picks one (logged)
	Grace time.Duration // in-flight requests' time to finish at shutdown; 0 means 5s
}

// ReadyWhen adds a readiness condition: /readyz answers 503 with check's
// error while it fails. The connections NATS and Postgres opened are
// checked first, in that order, then the conditions in the order added.
// Each check gets a context with a 2-second deadline.
func (b *Base) ReadyWhen(check func(context.Context) error) {
	b.checks = append(b.checks, check)
}

// NATSConnected is the readiness condition of a NATS connection.
func NATSConnected(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats disconnected")
		}
		return nil
	}
}

// Serve runs the service's parts (its consumers) together with its admin
// listener on addr until ctx is cancelled or a part fails, which stops the
// rest; the listener serves the shared routes (see Routes).
func (b *Base) Serve(ctx context.Context, addr string, parts map[string]func(context.Context) error) error {
	return b.ServeListeners(ctx, []Listener{{Name: Admin, Addr: addr}}, b.Routes(), parts)
}

// ServeListeners listens on every listener (all or none), serves each the
// rows of routes naming it, and runs parts beside them, until ctx is
// cancelled or any of them returns, which stops the rest. Every listener
// has every timeout (lifecycle.Harden): a public one must, and a stuck
// scraper must not pile up connections on an admin one either.
func (b *Base) ServeListeners(ctx context.Context, listeners []Listener, routes []Route, parts map[string]func(context.Context) error) error {
	lns := make([]net.Listener, 0, len(listeners))
	for _, l := range listeners {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			for _, open := range lns {
				_ = open.Close()
			}
			return fmt.Errorf("listen %s %s: %w", l.Name, l.Addr, err)
		}
		lns = append(lns, ln)
		b.Log.InfoContext(ctx, "running", "listener", l.Name, "addr", ln.Addr().String())
	}
	g := lifecycle.NewGroup(ctx)
	for i, l := range listeners {
		srv := &http.Server{Handler: Mux(routes, l.Name), ErrorLog: slog.NewLogLogger(b.Log.Handler(), slog.LevelWarn)}
		grace := l.Grace
		if grace == 0 {
			grace = defaultGrace
		}
		g.Go(l.Name+" listener", func(ctx context.Context) error { return lifecycle.Serve(ctx, srv, lns[i], grace) })
	}
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

// ready answers /readyz: "ready", or the first failing condition.
func (b *Base) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := b.readiness(ctx); err != nil {
		plain(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	plain(w, http.StatusOK, "ready")
}

func (b *Base) readiness(ctx context.Context) error {
	if b.nc != nil {
		if err := NATSConnected(b.nc)(ctx); err != nil {
			return err
		}
	}
	if b.pool != nil && b.pool.Ping(ctx) != nil {
		return errors.New("postgres unreachable")
	}
	for _, check := range b.checks {
		if err := check(ctx); err != nil {
			return err
		}
	}
	return nil
}

func plain(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, s+"\n")
}
