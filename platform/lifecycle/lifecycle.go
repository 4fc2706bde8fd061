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

// Serve runs srv on ln until ctx is cancelled, then shuts it down gracefully,
// giving in-flight requests up to grace to finish. It returns nil after a
// clean shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
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
