package main

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripefixture"
	"github.com/switchyard/switchyard/scripts/bench/internal/stripestream"
)

type fakeSender struct{ delay time.Duration }

func (f fakeSender) send(ctx context.Context, _ uint64) (string, bool) {
	select {
	case <-time.After(f.delay):
		return "200", true
	case <-ctx.Done():
		return "canceled", false
	}
}

func TestOpenLoopSendsTheWholeSchedule(t *testing.T) {
	t.Parallel()
	res := openLoop(t.Context(), fakeSender{}, 1000, 100*time.Millisecond, time.Second, 8)
	if got, want := res.ok, 100; got != want {
		t.Fatalf("ok = %d, want %d (codes %v)", got, want, res.codes)
	}
}

func TestOpenLoopChargesQueueingToLatency(t *testing.T) {
	t.Parallel()
	// One worker taking 10ms per request cannot keep up with 1000/s: the
	// last of 20 requests waits behind the others, and its latency must
	// show the wait, not just its own 10ms.
	res := openLoop(t.Context(), fakeSender{delay: 10 * time.Millisecond}, 1000, 20*time.Millisecond, time.Second, 1)
	if res.ok != 20 {
		t.Fatalf("ok = %d, want 20 (codes %v)", res.ok, res.codes)
	}
	if got := quantile(sortedCopy(res.latencies), 1); got < 150*time.Millisecond {
		t.Errorf("max latency = %s, want ≥ 150ms of queueing", got)
	}
}

func TestOpenLoopCountsUnsentAfterDrain(t *testing.T) {
	t.Parallel()
	res := openLoop(t.Context(), fakeSender{delay: 50 * time.Millisecond}, 1000, 20*time.Millisecond, 10*time.Millisecond, 1)
	if res.codes[unsentCode] == 0 {
		t.Fatalf("codes = %v, want some %q", res.codes, unsentCode)
	}
	total := 0
	for _, n := range res.codes {
		total += n
	}
	if total != 20 {
		t.Errorf("outcomes = %d, want 20", total)
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := quantile(d, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %s, want %s", tc.q, got, tc.want)
		}
	}
}

func TestRequireLoopbackURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url     string
		wantErr bool
	}{
		{"http://127.0.0.1:8080/webhooks/stripe", false},
		{"http://localhost:8080/", false},
		{"http://[::1]:8080/", false},
		{"nats://127.0.0.1:4222", false},
		{"http://10.0.0.1/", true},
		{"https://example.com/", true},
	} {
		if err := requireLoopbackURL(tc.url); (err != nil) != tc.wantErr {
			t.Errorf("requireLoopbackURL(%q) = %v, wantErr %v", tc.url, err, tc.wantErr)
		}
	}
}

func sortedCopy(d []time.Duration) []time.Duration {
	c := slices.Clone(d)
	slices.Sort(c)
	return c
}

// repoRoot is the repository root relative to this package's directory.
const repoRoot = "../../../.."

func TestHTTPSenderSendsTheFixturesRoundRobin(t *testing.T) {
	t.Parallel()
	const secret = "whsec_test_secret"
	set, err := stripefixture.LoadSet(filepath.Join(repoRoot, defaultFixture))
	if err != nil {
		t.Fatalf("load the default fixtures: %v", err)
	}
	var (
		mu    sync.Mutex
		types []string
		sent  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		types = append(types, string(ev.Type))
		sent += len(body)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	s := newHTTPSender(config{url: srv.URL, secret: secret, timeout: 5 * time.Second, concurrency: 1}, set)
	rounds := 2
	n := rounds * set.Len()
	for seq := range uint64(n) {
		if code, ok := s.send(t.Context(), seq); !ok {
			t.Fatalf("send(%d) = %s", seq, code)
		}
	}
	for i, got := range types {
		if want := set.For(uint64(i)).Type(); got != want {
			t.Errorf("request %d type = %q, want %q", i, got, want)
		}
	}
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(types)))); distinct < 2 {
		t.Errorf("%d distinct event types sent, want a mix", distinct)
	}
	if got, want := float64(sent)/float64(n), set.MeanBody(); got != want {
		t.Errorf("mean body sent = %v, want MeanBody %v", got, want)
	}
}

func TestReportNamesTheFixtures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, size := range []int{0, 100} { // bodies differ by 100 bytes
		ev := `{"id":"evt_1O59vsGgdF1VjufLNnhVwvT` + strconv.Itoa(i) + `","type":"customer.created","pad":"` +
			strings.Repeat("x", size) + `"}`
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".json"), []byte(ev), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := stripefixture.LoadSet(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantMean := int(math.Round(set.MeanBody()))
	rep := newReport(config{label: "x", mode: "http", concurrency: 1}, set,
		result{elapsed: time.Second, codes: map[string]int{}})
	if rep.Fixtures != 2 || rep.MeanBody != wantMean {
		t.Errorf("report fixtures=%d mean_body=%d, want 2 and %d", rep.Fixtures, rep.MeanBody, wantMean)
	}
	line := rep.line()
	for _, want := range []string{" fixtures=2 ", " mean_body=" + strconv.Itoa(wantMean) + " "} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"fixtures":2`, `"mean_body_bytes":` + strconv.Itoa(wantMean)} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON %s lacks %s", js, want)
		}
	}
}

func TestJetStreamSenderPublishesToEachEventsType(t *testing.T) {
	t.Parallel()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	set, err := stripefixture.LoadSet(filepath.Join(repoRoot, defaultFixture))
	if err != nil {
		t.Fatal(err)
	}
	s, err := newJetStreamSender(t.Context(), config{natsURL: srv.ClientURL(), timeout: 5 * time.Second}, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.close() })

	for seq := range uint64(2 * set.Len()) {
		if code, ok := s.send(t.Context(), seq); !ok {
			t.Fatalf("send(%d) = %s", seq, code)
		}
	}
	stream, err := s.js.Stream(t.Context(), stripestream.Name)
	if err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(2 * set.Len()) {
		msg, err := stream.GetMsg(t.Context(), seq+1)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := set.For(seq)
		if got, want := msg.Subject, stripestream.SubjectPrefix+tmpl.Type(); got != want {
			t.Errorf("message %d subject = %q, want %q", seq, got, want)
		}
		if got, want := msg.Header.Get(jetstream.MsgIDHeader), tmpl.ID(seq); got != want {
			t.Errorf("message %d Nats-Msg-Id = %q, want %q", seq, got, want)
		}
	}
}
