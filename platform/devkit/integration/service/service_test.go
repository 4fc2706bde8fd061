package service_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/service"
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

// TestNATSRefusesAnUnmigratedServer: a service started against a server
// nobody migrated creates nothing and refuses to start, naming what is
// missing and saying to run switchyard migrate.
func TestNATSRefusesAnUnmigratedServer(t *testing.T) {
	b := testkit.EmptyNATS(t)
	base, err := service.Start(context.Background(), "demo", "warn", config.MapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _, err = base.NATS(ctx, natsbus.Options{URL: b.URL}, natsbus.ConsumerCRM)
	if !errors.Is(err, natsbus.ErrNotMigrated) || !strings.HasSuffix(err.Error(), "run `switchyard migrate`") ||
		!strings.Contains(err.Error(), "stream STRIPE does not exist") {
		t.Fatalf("NATS on an empty server: %v, want a refusal naming the streams and saying to run switchyard migrate", err)
	}
	_, js := b.Connect(t)
	for name := range js.StreamNames(ctx).Name() {
		t.Errorf("stream %s exists after a refused start, want none", name)
	}

	// Streams migrated, but the consumer deleted: named too.
	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, natsbus.StreamBilling, natsbus.ConsumerCRM); err != nil {
		t.Fatal(err)
	}
	_, _, err = base.NATS(ctx, natsbus.Options{URL: b.URL}, natsbus.ConsumerCRM)
	if want := "nats: consumer crm on BILLING does not exist: run `switchyard migrate`"; err == nil || err.Error() != want {
		t.Fatalf("NATS without its consumer: %v, want %q", err, want)
	}
	if _, err := js.Consumer(ctx, natsbus.StreamBilling, natsbus.ConsumerCRM); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("crm's consumer after a refused start: %v, want still not found", err)
	}
	var closeErr error
	base.Close(ctx, &closeErr)
}

// TestNATSLeavesStreamSettingsAlone: a service whose environment says
// NATS_STREAM_MAX_AGE=1h, started on a migrated hub that keeps everything,
// changes no stream — it used to re-apply its own settings, so one
// service's retention could purge Stripe history — and logs the difference.
func TestNATSLeavesStreamSettingsAlone(t *testing.T) {
	b := testkit.NATS(t)
	var logs bytes.Buffer
	base, err := service.Start(context.Background(), "demo", "info", config.MapEnv(nil), &logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := config.NewReader(config.MapEnv(map[string]string{"NATS_URL": b.URL, "NATS_STREAM_MAX_AGE": "1h"}))
	o := natsbus.OptionsFromEnv(r, "demo")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := base.NATS(ctx, o, natsbus.ConsumerCRM); err != nil {
		t.Fatalf("NATS on a migrated server: %v", err)
	}
	_, js := b.Connect(t)
	for _, name := range natsbus.StreamNames() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if age := s.CachedInfo().Config.MaxAge; age != 0 {
			t.Errorf("stream %s keeps messages for %v after the service started, want 0 (forever) as migrated", name, age)
		}
	}
	if !strings.Contains(logs.String(), "stream STRIPE has max age 0s where NATS_STREAM_MAX_AGE asks for 1h0m0s") {
		t.Errorf("the difference is not logged:\n%s", logs.String())
	}
	var closeErr error
	base.Close(ctx, &closeErr)
}

// A vendor client keeps as many connections open as it has requests in
// flight: a second wave of 16 concurrent requests reuses the first wave's
// connections. With net/http's default of 2 idle connections per host it
// dialled 14 anew.
func TestVendorClientKeepsItsConnections(t *testing.T) {
	b, err := service.Start(context.Background(), "demo", "warn", config.MapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background(), new(error))
	const inFlight = 16
	var dials atomic.Int32
	var release atomic.Pointer[chan struct{}]
	arrived := make(chan struct{}, inFlight)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rel := *release.Load()
		arrived <- struct{}{}
		<-rel // every request of a wave is in flight at once
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := b.VendorClient("demo-vendor", 10*time.Second, inFlight)
	for wave := range 2 {
		rel := make(chan struct{})
		release.Store(&rel)
		var done sync.WaitGroup
		for range inFlight {
			done.Go(func() {
				resp, err := c.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		for range inFlight {
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				close(rel)
				done.Wait()
				t.Fatalf("wave %d: not every request reached the server", wave+1)
			}
		}
		close(rel)
		done.Wait()
		if n := dials.Load(); n != inFlight {
			t.Fatalf("after wave %d: %d connections dialled, want %d (one per request in flight, reused)", wave+1, n, inFlight)
		}
	}
}
