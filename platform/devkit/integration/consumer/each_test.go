package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// TestEachHandlesAPullSideBySide: consumer.Each runs a message handler over
// a pull's messages at once, never more than its limit, and settles each
// message by its own outcome: a transient failure is retried alone, a
// panic dead-letters only its message, and every other message is acked
// once, after one handling.
func TestEachHandlesAPullSideBySide(t *testing.T) {
	e := setup(t)
	const n, limit = 60, 8
	for i := range n {
		e.publish(t, "billing.test.each", fmt.Sprintf("x-%02d", i), fmt.Sprint(i))
	}
	var mu sync.Mutex
	handled := map[string]int{}
	deliveries := map[string]int{}
	var running, most atomic.Int32
	gate := make(chan struct{}) // holds the first handlers until the test has seen how many run at once
	h := func(ctx context.Context, m *consumer.Message) error {
		now := running.Add(1)
		defer running.Add(-1)
		for {
			old := most.Load()
			if now <= old || most.CompareAndSwap(old, now) {
				break
			}
		}
		<-gate
		mu.Lock()
		deliveries[m.ID]++
		d := deliveries[m.ID]
		mu.Unlock()
		switch {
		case m.ID == "x-07" && d < 2:
			return errclass.Transient(errors.New("not yet"))
		case m.ID == "x-13":
			panic("a bug that one event trips")
		}
		mu.Lock()
		handled[m.ID]++
		mu.Unlock()
		return nil
	}
	e.startBatch(t, consumer.Config{Name: "each", Subjects: []string{"billing.test.>"}, Batch: 20, BatchLinger: 200 * time.Millisecond,
		Backoff: []time.Duration{50 * time.Millisecond}}, consumer.Each(h, limit))
	// The first pull holds 20 messages: the limit's worth start, and no more.
	testkit.WaitFor(t, 10*time.Second, "the limit's worth of messages running", func() bool { return running.Load() >= limit })
	testkit.Never(t, 300*time.Millisecond, "more messages running than the limit", func() bool { return running.Load() > limit })
	close(gate)
	testkit.WaitFor(t, 20*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "each"))

	if got := most.Load(); got != limit {
		t.Errorf("at most %d messages ran at once, want the limit %d", got, limit)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		id := fmt.Sprintf("x-%02d", i)
		want, wantHandled := 1, 1
		switch id {
		case "x-07":
			want = 2
		case "x-13":
			wantHandled = 0
		}
		if deliveries[id] != want || handled[id] != wantHandled {
			t.Errorf("%s: %d deliveries, handled %d times; want %d and %d", id, deliveries[id], handled[id], want, wantHandled)
		}
	}
	dls := e.deadLetters(t, "dlq.each")
	if len(dls) != 1 || dls[0].OriginalMsgID != "x-13" || dls[0].Class != errclass.ClassPermanent {
		t.Fatalf("%d dead letters (%+v), want x-13's alone, permanent", len(dls), dls)
	}
}

// TestBatchWaitingForAWorkerIsKeptAlive: while every worker is busy for
// longer than AckWait (behind a vendor's rate limit, say), the batch the
// consumer has pulled next waits for a worker without being redelivered:
// every message is delivered once.
func TestBatchWaitingForAWorkerIsKeptAlive(t *testing.T) {
	e := setup(t)
	const n, batch = 10, 5 // one batch handled, the next one in hand: nothing more buffered
	for i := range n {
		e.publish(t, "billing.test.wait", fmt.Sprintf("w-%02d", i), fmt.Sprint(i))
	}
	var mu sync.Mutex
	deliveries := map[string]int{}
	var first atomic.Bool
	busy := make(chan struct{}) // the first batch's worker, until released
	e.startBatch(t, consumer.Config{Name: "waiting", Subjects: []string{"billing.test.>"}, Batch: batch, BatchLinger: 200 * time.Millisecond,
		Workers: 1, AckWait: 300 * time.Millisecond},
		func(ctx context.Context, ms []*consumer.Message) error {
			mu.Lock()
			for _, m := range ms {
				deliveries[m.ID]++
			}
			mu.Unlock()
			if first.CompareAndSwap(false, true) {
				<-busy
			}
			return nil
		})
	redelivered := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range deliveries {
			if d > 1 {
				return true
			}
		}
		return false
	}
	testkit.WaitFor(t, 10*time.Second, "the first batch handled", first.Load)
	testkit.Never(t, 1500*time.Millisecond, "a redelivery while the only worker is busy (5 × AckWait)", redelivered)
	close(busy)
	testkit.WaitFor(t, 15*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "waiting"))
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if id := fmt.Sprintf("w-%02d", i); deliveries[id] != 1 {
			t.Errorf("%s delivered %d times, want once", id, deliveries[id])
		}
	}
}

// TestEachRecordsEachMessagesOwnDuration: a message handled on its own by
// Each is timed on its own in switchyard_consumer_handle_duration, not
// given its pull's average (which would hide one slow vendor call among
// fast ones).
func TestEachRecordsEachMessagesOwnDuration(t *testing.T) {
	e := setup(t)
	for _, id := range []string{"slow", "fast-1", "fast-2", "fast-3"} {
		e.publish(t, "billing.test.timed", id, id)
	}
	reader := sdkmetric.NewManualReader()
	// The slow message's handler runs until the test releases it: once the
	// three fast ones have returned and it has run for at least slow.
	const slow = 300 * time.Millisecond
	var fastDone atomic.Int32
	var slowStart atomic.Int64
	release := make(chan struct{})
	each := consumer.Each(func(_ context.Context, m *consumer.Message) error {
		if m.ID == "slow" {
			slowStart.Store(time.Now().UnixNano())
			<-release
			return nil
		}
		fastDone.Add(1)
		return nil
	}, 4)
	var pulls []int // the size of each pull: the four must share one for the pull's average to differ
	var mu sync.Mutex
	e.startBatch(t, consumer.Config{Name: "timed", Subjects: []string{"billing.test.>"}, Batch: 4, BatchLinger: 200 * time.Millisecond,
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))},
		func(ctx context.Context, ms []*consumer.Message) error {
			mu.Lock()
			pulls = append(pulls, len(ms))
			mu.Unlock()
			return each(ctx, ms)
		})
	testkit.WaitFor(t, 10*time.Second, "the fast messages handled while the slow one runs", func() bool {
		started := slowStart.Load()
		return fastDone.Load() == 3 && started != 0 && time.Since(time.Unix(0, started)) >= slow
	})
	close(release)
	testkit.WaitFor(t, 10*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "timed"))
	mu.Lock()
	if len(pulls) != 1 || pulls[0] != 4 {
		t.Fatalf("pulls of %v messages, want one of 4", pulls)
	}
	mu.Unlock()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || m.Name != "switchyard_consumer_handle_duration" {
				continue
			}
			for _, dp := range h.DataPoints {
				found = true
				lo, _ := dp.Min.Value()
				hi, _ := dp.Max.Value()
				// The pull's average would be at least slow/4 for every message.
				if dp.Count != 4 || hi < slow.Seconds() || lo >= (slow/6).Seconds() {
					t.Errorf("%d durations between %.3fs and %.3fs; want 4, the slow one ≥ %v and the fast ones under %v",
						dp.Count, lo, hi, slow, slow/6)
				}
			}
		}
	}
	if !found {
		t.Fatal("no switchyard_consumer_handle_duration recorded")
	}
}
