package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
)

func (e *env) startBatch(t *testing.T, cfg consumer.Config, h consumer.BatchHandler) {
	t.Helper()
	nc, err := nats.Connect(e.broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cfg.Stream, cfg.Create = natsbus.StreamBilling, true
	c, err := consumer.NewBatch(js, e.ledger, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- c.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
}

// A batch handler sees many messages per call; one poison message fails the
// batch, is isolated and dead-lettered alone, and every other message is
// applied and acked.
func TestBatchIsolatesAPoisonMessage(t *testing.T) {
	e := setup(t)
	const n = 300
	for i := range n {
		e.publish(t, "billing.test.batch", fmt.Sprintf("b-%03d", i), fmt.Sprint(i))
	}
	var mu sync.Mutex
	applied := map[string]int{}
	var sizes []int
	e.startBatch(t, consumer.Config{Name: "batcher", Subjects: []string{"billing.test.>"}, Batch: 100},
		func(ctx context.Context, ms []*consumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(ms))
			for _, m := range ms {
				if m.ID == "b-137" {
					return errclass.Permanent(errors.New("unreadable"))
				}
			}
			// All or nothing, as a transaction would be.
			for _, m := range ms {
				applied[m.ID]++
			}
			return nil
		})
	testkit.WaitFor(t, 15*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "batcher"))

	mu.Lock()
	defer mu.Unlock()
	if len(applied) != n-1 {
		t.Fatalf("applied %d messages, want %d", len(applied), n-1)
	}
	if _, ok := applied["b-137"]; ok {
		t.Fatal("the poison message was applied")
	}
	biggest := 0
	for _, s := range sizes {
		if s > 100 {
			t.Fatalf("a batch of %d messages exceeds Batch=100", s)
		}
		biggest = max(biggest, s)
	}
	if biggest < 10 {
		t.Fatalf("largest batch was %d messages; a backlog should be handled in large batches (sizes %v)", biggest, sizes)
	}
	dls := e.deadLetters(t, "dlq.batcher")
	if len(dls) != 1 || dls[0].OriginalMsgID != "b-137" || dls[0].Class != errclass.ClassPermanent {
		t.Fatalf("dead letters = %+v, want exactly b-137 (permanent)", dls)
	}
}

// A transient batch failure is retried; nothing is dead-lettered and every
// message ends up applied once the cause clears.
func TestBatchTransientFailureRetries(t *testing.T) {
	e := setup(t)
	for i := range 20 {
		e.publish(t, "billing.test.retry", fmt.Sprintf("r-%02d", i), "x")
	}
	var mu sync.Mutex
	calls := 0
	applied := map[string]bool{}
	e.startBatch(t, consumer.Config{Name: "batchretry", Subjects: []string{"billing.test.>"}, Backoff: []time.Duration{20 * time.Millisecond}},
		func(ctx context.Context, ms []*consumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls <= 3 {
				return errclass.Transient(errors.New("database restarting"))
			}
			for _, m := range ms {
				applied[m.ID] = true
			}
			return nil
		})
	testkit.WaitFor(t, 15*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "batchretry"))
	mu.Lock()
	defer mu.Unlock()
	if len(applied) != 20 {
		t.Fatalf("applied %d, want 20", len(applied))
	}
	if dls := e.deadLetters(t, "dlq.batchretry"); len(dls) != 0 {
		t.Fatalf("%d dead letters for a transient failure", len(dls))
	}
}

// The batch's span (where its database work goes) is a child of the first
// message's process span, in that message's trace, and links to the other
// messages' process spans; each process span continues its own message's
// trace from the traceparent header.
func TestBatchSpanJoinsTheFirstMessagesTrace(t *testing.T) {
	e := setup(t)
	const n = 5
	for i := range n {
		tp := fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
		msg := &nats.Msg{Subject: "billing.test.traced", Data: []byte("x"),
			Header: nats.Header{"Nats-Msg-Id": {fmt.Sprintf("t-%d", i)}, "traceparent": {tp}}}
		if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	// What every service's telemetry setup installs.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var mu sync.Mutex
	var batchSpans []trace.SpanContext
	e.startBatch(t, consumer.Config{Name: "batchtrace", Subjects: []string{"billing.test.>"}, Tracer: tp, BatchLinger: time.Second},
		func(ctx context.Context, ms []*consumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			batchSpans = append(batchSpans, trace.SpanContextFromContext(ctx))
			return nil
		})
	testkit.WaitFor(t, 15*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "batchtrace"))
	process := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var batches []sdktrace.ReadOnlySpan
	testkit.WaitFor(t, 5*time.Second, "every span ended", func() bool {
		process, batches = map[trace.SpanID]sdktrace.ReadOnlySpan{}, nil
		for _, s := range rec.Ended() {
			if strings.HasPrefix(s.Name(), "process batch ") {
				batches = append(batches, s)
			} else {
				process[s.SpanContext().SpanID()] = s
			}
		}
		return len(process) == n && len(batches) == len(batchSpans)
	})
	linked := 0
	for _, b := range batches {
		parent, ok := process[b.Parent().SpanID()]
		if !ok || b.SpanContext().TraceID() != parent.SpanContext().TraceID() {
			t.Fatalf("batch span %s is not a child of a message's process span (parent %s)", b.SpanContext().SpanID(), b.Parent().SpanID())
		}
		for _, l := range b.Links() {
			if _, ok := process[l.SpanContext.SpanID()]; !ok {
				t.Errorf("batch span links to %s, no message's process span", l.SpanContext.SpanID())
			}
		}
		linked += 1 + len(b.Links())
	}
	if linked != n {
		t.Errorf("batch spans reach %d messages (parent + links), want each of the %d once", linked, n)
	}
	for _, s := range process {
		if !s.Parent().IsRemote() || s.Parent().TraceID() != s.SpanContext().TraceID() {
			t.Errorf("process span %s does not continue its message's trace", s.Name())
		}
	}
}

// A Results error settles each message of a batch by its own outcome: the
// one that must wait for another event is retried alone (and then handled)
// while the rest of its batch is acked at once, and nothing is tried alone
// as after a failed batch. Each message's Context carries its own trace.
func TestBatchResultsSettleEachMessageByItsOwnOutcome(t *testing.T) {
	e := setup(t)
	const n = 40
	for i := range n {
		tp := fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
		msg := &nats.Msg{Subject: "billing.test.each", Data: []byte("x"),
			Header: nats.Header{"Nats-Msg-Id": {fmt.Sprintf("e-%02d", i)}, "traceparent": {tp}}}
		if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tp := sdktrace.NewTracerProvider()
	var mu sync.Mutex
	handled := map[string]int{}
	deliveries := map[string]int{}
	var foreign []string
	e.startBatch(t, consumer.Config{Name: "batcheach", Subjects: []string{"billing.test.>"}, Tracer: tp, Backoff: []time.Duration{50 * time.Millisecond}, BatchLinger: 200 * time.Millisecond},
		func(ctx context.Context, ms []*consumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			res := make(consumer.Results, len(ms))
			for i, m := range ms {
				deliveries[m.ID]++
				var k int
				fmt.Sscanf(m.ID, "e-%d", &k)
				if got := trace.SpanContextFromContext(m.Context(ctx)).TraceID(); got != mustTraceID(t, fmt.Sprintf("%032x", k+1)) {
					foreign = append(foreign, m.ID)
				}
				if m.ID == "e-07" && deliveries[m.ID] < 3 {
					res[i] = errclass.Transient(errors.New("its customer's event has not come yet"))
					continue
				}
				handled[m.ID]++
			}
			return res
		})
	testkit.WaitFor(t, 15*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "batcheach"))
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != n {
		t.Fatalf("handled %d messages, want %d", len(handled), n)
	}
	for id, d := range deliveries {
		want := 1
		if id == "e-07" {
			want = 3
		}
		if d != want || handled[id] != 1 {
			t.Errorf("%s: %d deliveries and handled %d times, want %d and once", id, d, handled[id], want)
		}
	}
	if len(foreign) > 0 {
		t.Errorf("Message.Context did not carry the message's own trace for %v", foreign)
	}
	if dls := e.deadLetters(t, "dlq.batcheach"); len(dls) != 0 {
		t.Fatalf("%d dead letters", len(dls))
	}
}

func mustTraceID(t *testing.T, h string) trace.TraceID {
	t.Helper()
	id, err := trace.TraceIDFromHex(h)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// With Workers, a batch consumer handles that many batches at once.
func TestBatchWorkersHandleBatchesAtOnce(t *testing.T) {
	e := setup(t)
	for i := range 40 {
		e.publish(t, "billing.test.par", fmt.Sprintf("p-%02d", i), "x")
	}
	var inFlight, most atomic.Int32
	both := make(chan struct{})
	var once sync.Once
	e.startBatch(t, consumer.Config{Name: "batchpar", Subjects: []string{"billing.test.>"}, Batch: 5, Workers: 2},
		func(ctx context.Context, ms []*consumer.Message) error {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			if n > most.Load() {
				most.Store(n)
			}
			if n == 2 {
				once.Do(func() { close(both) })
			}
			select { // hold the batch until another is in flight too, or give up
			case <-both:
			case <-time.After(2 * time.Second):
			}
			return nil
		})
	testkit.WaitFor(t, 15*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "batchpar"))
	if got := most.Load(); got != 2 {
		t.Fatalf("at most %d batches in flight at once, want 2", got)
	}
}
