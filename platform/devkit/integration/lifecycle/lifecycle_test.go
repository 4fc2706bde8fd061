package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/lifecycle"
)

var (
	errConsumers = errors.New("consumers did not drain")
	errPool      = errors.New("pool close failed")
)

func TestStackClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fail      map[string]error // closer name → its error
		wantErrs  []error
		wantNames []string // "stop NAME" in the message
	}{
		{name: "all succeed"},
		{
			name:      "one fails, the rest still run",
			fail:      map[string]error{"consumers": errConsumers},
			wantErrs:  []error{errConsumers},
			wantNames: []string{"stop consumers"},
		},
		{
			name:      "several fail, errors joined",
			fail:      map[string]error{"consumers": errConsumers, "database": errPool},
			wantErrs:  []error{errConsumers, errPool},
			wantNames: []string{"stop consumers", "stop database"},
		},
	}
	// Registered in start-up order; stopped in reverse.
	order := []string{"telemetry", "database", "publishers", "consumers", "intake"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s lifecycle.Stack
			var ran []string
			for _, name := range order {
				s.Push(name, func(context.Context) error {
					ran = append(ran, name)
					return tt.fail[name]
				})
			}
			err := s.Close(context.Background())

			if got, want := strings.Join(ran, ","), "intake,consumers,publishers,database,telemetry"; got != want {
				t.Errorf("closers ran %s, want %s", got, want)
			}
			if len(tt.wantErrs) == 0 && err != nil {
				t.Fatalf("Close = %v, want nil", err)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("Close = %v, want it to wrap %v", err, want)
				}
			}
			for _, n := range tt.wantNames {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("Close = %v, want it to name %q", err, n)
				}
			}
		})
	}
}

func TestStackCloseAfterContextExpired(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var s lifecycle.Stack
	n := 0
	for range 3 {
		s.Push("step", func(ctx context.Context) error { n++; return ctx.Err() })
	}
	err := s.Close(ctx)
	if n != 3 {
		t.Errorf("%d closers ran with an expired context, want 3", n)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Close = %v, want context.Canceled", err)
	}
	// Close empties the stack: a second Close runs nothing.
	if err := s.Close(context.Background()); err != nil || n != 3 {
		t.Errorf("second Close = %v after %d runs, want nil and no new run", err, n)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// recv waits for a value from c, failing the test after timeout.
func recv[T any](t *testing.T, c <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

type response struct {
	status int
	body   string
	err    error
}

func get(url string) response {
	resp, err := http.Get(url)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: string(b), err: err}
}

// TestServeDrainsInFlight cancels the context while a request is blocked in
// its handler: the server must stop accepting, let that request finish, and
// only then return nil.
func TestServeDrainsInFlight(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	addr := ln.Addr().String()
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
			finished.Store(true)
		}
		_, _ = io.WriteString(w, "done "+r.URL.Path)
	})}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- lifecycle.Serve(ctx, srv, ln, 10*time.Second) }()

	testkit.WaitFor(t, 5*time.Second, "the server to answer", func() bool { return get("http://"+addr+"/ping").err == nil })
	inflight := make(chan response, 1)
	go func() { inflight <- get("http://" + addr + "/slow") }()
	recv(t, entered, 5*time.Second, "the slow request to reach its handler")

	cancel()
	// Shutdown closes the listener first: once new connections are refused,
	// shutdown is under way while /slow is still blocked.
	testkit.WaitFor(t, 5*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v while a request was in flight", err)
	default:
	}

	close(release)
	if r := recv(t, inflight, 5*time.Second, "the in-flight response"); r.err != nil || r.status != http.StatusOK || r.body != "done /slow" {
		t.Fatalf("in-flight request got %d %q %v, want 200 \"done /slow\"", r.status, r.body, r.err)
	}
	if err := recv(t, served, 5*time.Second, "Serve to return"); err != nil {
		t.Fatalf("Serve = %v, want nil after a clean shutdown", err)
	}
	if !finished.Load() {
		t.Fatal("Serve returned before the in-flight handler finished")
	}
}

// TestServeGraceExpires checks a handler that outlives the grace period turns
// into an error instead of blocking shutdown forever.
func TestServeGraceExpires(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release
	})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- lifecycle.Serve(ctx, srv, ln, 100*time.Millisecond) }()
	go get("http://" + ln.Addr().String() + "/stuck")
	recv(t, entered, 5*time.Second, "the request to reach its handler")

	cancel()
	err := recv(t, served, 5*time.Second, "Serve to give up after the grace period")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "http shutdown") {
		t.Errorf("Serve = %v, want it to say the shutdown failed", err)
	}
}

// limits are the fields Harden sets.
type limits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
}

// TestServeHardensServer: a server started through Serve without timeouts
// gets every one of them and a header limit, so a slow or idle client cannot
// hold a connection for ever; what the caller set is kept.
func TestServeHardensServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		srv  *http.Server
		want limits
	}{
		{name: "nothing set", srv: &http.Server{Handler: http.NotFoundHandler()}, want: limits{
			ReadHeaderTimeout: lifecycle.DefaultReadHeaderTimeout, ReadTimeout: lifecycle.DefaultReadTimeout,
			WriteTimeout: lifecycle.DefaultWriteTimeout, IdleTimeout: lifecycle.DefaultIdleTimeout, MaxHeaderBytes: lifecycle.DefaultMaxHeaderBytes}},
		{name: "only a header timeout set", srv: &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}, want: limits{
			ReadHeaderTimeout: time.Second, ReadTimeout: lifecycle.DefaultReadTimeout,
			WriteTimeout: lifecycle.DefaultWriteTimeout, IdleTimeout: lifecycle.DefaultIdleTimeout, MaxHeaderBytes: lifecycle.DefaultMaxHeaderBytes}},
		{name: "own values kept, negative means none", srv: &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second,
			WriteTimeout: -1, IdleTimeout: 3 * time.Second, MaxHeaderBytes: 4096}, want: limits{
			ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: -1, IdleTimeout: 3 * time.Second, MaxHeaderBytes: 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := listen(t)
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- lifecycle.Serve(ctx, tt.srv, ln, time.Second) }()
			testkit.WaitFor(t, 5*time.Second, "the server to answer", func() bool { return get("http://"+ln.Addr().String()).err == nil })
			cancel()
			if err := recv(t, served, 5*time.Second, "Serve to return"); err != nil {
				t.Fatal(err)
			}
			s := tt.srv
			if got := (limits{s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes}); got != tt.want {
				t.Errorf("served with %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestServeListenerClosed(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	srv := &http.Server{Handler: http.NotFoundHandler()}
	served := make(chan error, 1)
	go func() { served <- lifecycle.Serve(context.Background(), srv, ln, time.Second) }()
	testkit.WaitFor(t, 5*time.Second, "the server to answer", func() bool { return get("http://"+ln.Addr().String()).err == nil })

	_ = ln.Close()
	err := recv(t, served, 5*time.Second, "Serve to notice the closed listener")
	if err == nil {
		t.Fatal("Serve = nil after its listener was closed, want an error")
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve = %v, want it to wrap net.ErrClosed", err)
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Serve = %v, want it to name the address", err)
	}
}

func TestSignalContext(t *testing.T) {
	t.Parallel()
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, stop := lifecycle.SignalContext(parent)
	defer stop()
	cancelParent()
	recv(t, ctx.Done(), 5*time.Second, "the signal context to follow its parent")
}

func TestGroupFirstReturnStopsTheRest(t *testing.T) {
	t.Parallel()
	g := lifecycle.NewGroup(context.Background())
	boom := errors.New("boom")
	stopped := make(chan struct{})
	g.Go("long", func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return nil
	})
	g.Go("failing", func(context.Context) error { return boom })
	err := g.Wait()
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "failing: boom") {
		t.Fatalf("Wait = %v, want the named failure", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the long-running part was not stopped")
	}
}

func TestGroupParentCancelStopsAll(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	g := lifecycle.NewGroup(ctx)
	for _, name := range []string{"a", "b"} {
		g.Go(name, func(ctx context.Context) error { <-ctx.Done(); return nil })
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("Wait = %v, want nil after a clean stop", err)
	}
}
