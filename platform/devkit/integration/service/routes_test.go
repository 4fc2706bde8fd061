package service_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/service"
)

// TestRouteTable: each listener serves the rows of the table naming it and
// nothing else: liveness on the admin and public listeners, readiness and
// metrics on the admin listener only, a service's own row on its listener
// only; a listener of the service's own gets none of the shared rows.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	b, err := service.Start(context.Background(), "demo", "warn", config.MapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	hook := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	routes := b.Routes(
		service.Route{Listener: service.Public, Method: http.MethodPost, Path: "/hook", Handler: hook},
		service.Route{Listener: "ops", Method: http.MethodPost, Path: "/hook", Handler: hook},
	)
	tests := []struct {
		listener, method, path string
		want                   int
	}{
		{service.Admin, http.MethodGet, "/healthz", http.StatusOK},
		{service.Admin, http.MethodGet, "/readyz", http.StatusOK},
		{service.Admin, http.MethodGet, "/metrics", http.StatusOK},
		{service.Admin, http.MethodPost, "/hook", http.StatusNotFound},
		{service.Public, http.MethodGet, "/healthz", http.StatusOK},
		{service.Public, http.MethodPost, "/hook", http.StatusAccepted},
		{service.Public, http.MethodGet, "/readyz", http.StatusNotFound},
		{service.Public, http.MethodGet, "/metrics", http.StatusNotFound},
		{"ops", http.MethodPost, "/hook", http.StatusAccepted},
		{"ops", http.MethodGet, "/healthz", http.StatusNotFound},
		{"ops", http.MethodGet, "/readyz", http.StatusNotFound},
		{"ops", http.MethodGet, "/metrics", http.StatusNotFound},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		service.Mux(routes, tt.listener).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.want {
			t.Errorf("%s %s %s = %d, want %d", tt.listener, tt.method, tt.path, rec.Code, tt.want)
		}
	}
}

// TestReadyWhen: /readyz answers 503 naming the first failing condition a
// service added, and 200 once it holds.
func TestReadyWhen(t *testing.T) {
	t.Parallel()
	b, err := service.Start(context.Background(), "demo", "warn", config.MapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var failing error = errors.New("stream STRIPE: not found")
	b.ReadyWhen(func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("readiness check without a deadline")
		}
		return failing
	})
	ready := func() (int, string) {
		rec := httptest.NewRecorder()
		service.Mux(b.Routes(), service.Admin).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || body != "stream STRIPE: not found" {
		t.Errorf("readyz with a failing condition = %d %q, want 503 naming it", code, body)
	}
	failing = nil
	if code, body := ready(); code != http.StatusOK || body != "ready" {
		t.Errorf("readyz once it holds = %d %q, want 200 ready", code, body)
	}
}

// TestServeListeners: two listeners from one table, each serving its own
// rows; a listener that cannot bind leaves none open.
func TestServeListeners(t *testing.T) {
	t.Parallel()
	b, err := service.Start(context.Background(), "demo", "warn", config.MapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	public, admin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.ServeListeners(ctx, []service.Listener{{Name: service.Public, Addr: public}, {Name: service.Admin, Addr: admin}}, b.Routes(), nil)
	}()
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testkit.WaitFor(t, 5*time.Second, "both listeners", func() bool {
		return get("http://"+public+"/healthz") == http.StatusOK && get("http://"+admin+"/healthz") == http.StatusOK
	})
	if code := get("http://" + public + "/metrics"); code != http.StatusNotFound {
		t.Errorf("public /metrics = %d, want 404", code)
	}
	if code := get("http://" + admin + "/metrics"); code != http.StatusOK {
		t.Errorf("admin /metrics = %d, want 200", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeListeners after cancel: %v", err)
	}

	// The admin address is taken: nothing is served, and the public
	// listener opened first is closed again.
	taken := httptest.NewServer(http.NotFoundHandler())
	defer taken.Close()
	free := testkit.FreeAddr(t)
	err = b.ServeListeners(context.Background(), []service.Listener{{Name: service.Public, Addr: free}, {Name: service.Admin, Addr: strings.TrimPrefix(taken.URL, "http://")}}, b.Routes(), nil)
	if err == nil || !strings.Contains(err.Error(), "listen admin") {
		t.Fatalf("ServeListeners on a taken address = %v, want a listen admin error", err)
	}
	if code := get("http://" + free + "/healthz"); code != 0 {
		t.Errorf("public listener answered %d after the admin one failed to bind, want closed", code)
	}
}
