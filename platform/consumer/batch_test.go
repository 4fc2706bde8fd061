package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/testkit"
)

func (e *env) startBatch(t *testing.T, cfg consumer.Config, h consumer.BatchHandler) {
	t.Helper()
	nc, err := nats.Connect(e.broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cfg.Stream = natsbus.StreamBilling
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
