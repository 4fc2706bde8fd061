package service_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/platform/testkit"
)

func TestStartAndCloseInReverse(t *testing.T) {
	var out bytes.Buffer
	b, err := service.Start(context.Background(), "demo", "info", config.MapEnv(nil), &out)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	b.Stack.Push("nats", func(context.Context) error { order = append(order, "nats"); return errors.New("drain failed") })
	b.Stack.Push("http", func(context.Context) error { order = append(order, "http"); return nil })
	b.Log.Info("hello")
	runErr := errors.New("run failed")
	b.Close(context.Background(), &runErr)
	if strings.Join(order, ",") != "http,nats" {
		t.Errorf("closers ran %v, want http then nats", order)
	}
	if !strings.Contains(runErr.Error(), "run failed") || !strings.Contains(runErr.Error(), "drain failed") {
		t.Errorf("joined error %q lacks one of the errors", runErr)
	}
	if !strings.Contains(out.String(), `"service":"demo"`) {
		t.Errorf("log lacks the service name: %s", out.String())
	}
}

// TestServeListenerIsHardened: the health/metrics listener refuses a
// request with 100 KiB of headers (431) — it had net/http's 1 MB limit and
// no read, write or idle timeouts; lifecycle.Harden gives it all of them.
func TestServeListenerIsHardened(t *testing.T) {
	b, err := service.Start(context.Background(), "demo", "warn", config.MapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, addr, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	get := func(header string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
		if header != "" {
			req.Header.Set("X-Padding", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testkit.WaitFor(t, 5*time.Second, "the listener", func() bool { return get("") == http.StatusOK })
	if code := get(strings.Repeat("x", 100<<10)); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB of headers: %d, want 431", code)
	}
}
