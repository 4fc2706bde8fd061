package consumer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// vendor stands in for an outside system with a natural idempotency key
// (HubSpot upsert by email, Zendesk external_id): it counts calls and keeps
// one record per key.
type vendor struct {
	mu      sync.Mutex
	calls   int
	records map[string]int
}

func (v *vendor) upsert(key string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	if v.records == nil {
		v.records = map[string]int{}
	}
	v.records[key]++
}

func (v *vendor) state() (calls, keys int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls, len(v.records)
}

// Steps of handling one message, in order; the process may die after any.
const (
	stepEffect    = iota // the vendor call is done
	stepLedger           // the ledger row is written
	stepPublished        // the outcome is published
	stepNone             // no crash: handled and acked
)

// TestCrashBetweenAnyTwoStepsNeitherLosesNorDuplicates kills a consumer
// after each step of handling a message, starts a fresh one on the same
// durable, and checks that exactly one effect and one outcome exist.
func TestCrashBetweenAnyTwoStepsNeitherLosesNorDuplicates(t *testing.T) {
	for _, crashAfter := range []int{stepEffect, stepLedger, stepPublished, stepNone} {
		name := map[int]string{stepEffect: "after effect", stepLedger: "after ledger", stepPublished: "after publish", stepNone: "no crash"}[crashAfter]
		t.Run(name, func(t *testing.T) {
			e := setup(t)
			v := &vendor{}
			crashed := make(chan struct{})
			var once sync.Once
			handler := func(crash bool) consumer.Handler {
				return func(ctx context.Context, m *consumer.Message) error {
					die := func(step int) {
						if crash && step == crashAfter {
							once.Do(func() { close(crashed) })
							select {} // the process is gone: nothing after this step runs, no ack, no nak
						}
					}
					k := ledger.Key{Consumer: "crm", MessageID: m.ID, Effect: "vendor.upsert"}
					if _, done, err := e.ledger.Lookup(ctx, k); err != nil {
						return err
					} else if !done {
						v.upsert("contact:" + m.ID)
						die(stepEffect)
						if err := e.ledger.Record(ctx, k, []byte("contact-1")); err != nil {
							return err
						}
					}
					die(stepLedger)
					out := &nats.Msg{Subject: "crm.contact.synced", Data: []byte(m.ID), Header: nats.Header{"Nats-Msg-Id": {"crm.synced:" + m.ID}}}
					if _, err := e.js.PublishMsg(ctx, out); err != nil {
						return err
					}
					die(stepPublished)
					return nil
				}
			}
			cfg := consumer.Config{Name: "crm", Subjects: []string{"billing.test.>"}, AckWait: 500 * time.Millisecond}
			first := e.start(t, cfg, handler(crashAfter != stepNone))
			e.publish(t, "billing.test.paid", "evt_crash1", "{}")
			if crashAfter != stepNone {
				select {
				case <-crashed:
				case <-time.After(10 * time.Second):
					t.Fatal("handler never reached the crash point")
				}
				first.kill()
				e.start(t, cfg, handler(false)) // the restarted process
			}
			testkit.WaitFor(t, 15*time.Second, "message settled after restart", e.settled(t, natsbus.StreamBilling, "crm"))

			calls, keys := v.state()
			if keys != 1 {
				t.Errorf("vendor holds %d records, want 1", keys)
			}
			if crashAfter == stepEffect && calls != 2 {
				t.Errorf("vendor called %d times; a crash before the ledger row must repeat the (idempotent) call", calls)
			}
			if crashAfter != stepEffect && calls != 1 {
				t.Errorf("vendor called %d times, want 1: the ledger must skip a recorded effect", calls)
			}
			s, _ := e.js.Stream(context.Background(), natsbus.StreamCRM)
			info, _ := s.Info(context.Background())
			if info.State.Msgs != 1 {
				t.Errorf("CRM stream holds %d outcomes, want exactly 1", info.State.Msgs)
			}
			if _, done, _ := e.ledger.Lookup(context.Background(), ledger.Key{Consumer: "crm", MessageID: "evt_crash1", Effect: "vendor.upsert"}); !done {
				t.Error("ledger has no row for the effect")
			}
		})
	}
}
