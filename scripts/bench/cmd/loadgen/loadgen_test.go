package main

import (
	"context"
	"slices"
	"testing"
	"time"
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
