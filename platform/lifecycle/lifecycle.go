// Package lifecycle runs a service's long-lived parts and stops them in order.
//
// The shutdown contract every service follows: on SIGTERM/SIGINT the context
// is cancelled; intake stops first (the HTTP server refuses new requests and
// finishes in-flight ones, each of which still waits for its PubAck), then
// consumers drain, then publishers flush, then the database pool closes, then
// telemetry flushes. Services get that order by registering closers with
// Stack in start-up order; Stack runs them in reverse.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// SignalContext returns a context cancelled by SIGINT or SIGTERM.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// Stack is a list of named closers run last-in first-out.
// It is not safe for concurrent use.
type Stack struct{ steps []step }

type step struct {
	name string
	f    func(context.Context) error
}

// Push registers f to run at Close, before everything pushed earlier.
func (s *Stack) Push(name string, f func(context.Context) error) {
	s.steps = append(s.steps, step{name, f})
}

// Close runs the closers in reverse order and joins their errors. Every
// closer runs even when an earlier one fails or ctx expires.
func (s *Stack) Close(ctx context.Context) error {
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		if err := s.steps[i].f(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.steps[i].name, err))
		}
	}
	s.steps = nil
	return errors.Join(errs...)
}

// Limits every HTTP server of the hub has unless it sets its own (see
// Harden). Without them one client could hold a connection, and its
// goroutine, for ever: by sending its headers or body a byte at a time, by
// not reading the response, or by leaving a keep-alive connection idle.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second // the whole request, body included
	DefaultWriteTimeout      = 30 * time.Second // from the end of the request headers to the end of the response
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// Harden sets every one of srv's timeouts, and its header size limit, that
// is zero to the default above, and returns srv. A negative timeout is left
// alone: it is net/http's way of saying "none", and only a deliberate
// choice writes it. A handler that legitimately answers later than the write
// timeout (a long rebuild) extends its own deadline with
// http.ResponseController.SetWriteDeadline.
func Harden(srv *http.Server) *http.Server {
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if srv.ReadTimeout == 0 {
		srv.ReadTimeout = DefaultReadTimeout
	}
	if srv.WriteTimeout == 0 {
		srv.WriteTimeout = DefaultWriteTimeout
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = DefaultIdleTimeout
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return srv
}

// Serve runs srv on ln until ctx is cancelled, then shuts it down gracefully,
// giving in-flight requests up to grace to finish. It returns nil after a
// clean shutdown. It hardens srv first (see Harden), so no listener started
// through Serve is without timeouts.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	Harden(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("http shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Group runs long-lived parts together, each as Run(ctx) error. The first
// part to return (with or without an error) cancels the others' context, so
// one failing service stops the process instead of leaving it half alive;
// Wait returns every part's error, named. The zero value is not usable: use
// NewGroup.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

// NewGroup returns a Group whose parts run under a child of ctx.
func NewGroup(ctx context.Context) *Group {
	ctx, cancel := context.WithCancel(ctx)
	return &Group{ctx: ctx, cancel: cancel}
}

// Go starts part run. A part must return soon after its context is cancelled.
func (g *Group) Go(name string, run func(context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer g.cancel()
		if err := run(g.ctx); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("%s: %w", name, err))
			g.mu.Unlock()
		}
	}()
}

// Context is the context the parts run under; it is done once any part has
// returned or the parent is cancelled.
func (g *Group) Context() context.Context { return g.ctx }

// Stop cancels every part without waiting.
func (g *Group) Stop() { g.cancel() }

// Wait waits for every part and returns their errors joined.
func (g *Group) Wait() error {
	g.wg.Wait()
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// Healthcheck GETs /healthz of the local instance listening on addr
// (host:port; an empty or wildcard host means 127.0.0.1) and returns a
// process exit code: 0 healthy, 1 not. It backs `<service> -healthcheck`
// for container images without a shell.
func Healthcheck(addr string) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

// Sleep waits d or until ctx is done, whichever comes first, and returns
// ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
