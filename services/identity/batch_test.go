package identity_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"pgregory.net/rapid"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/proto/wire"
)

// TestLifecyclesInBatchesAsOneByOne: resolving a fetched batch in one
// transaction (HandleBatch) leaves the same identity state and publishes
// the same domain events as handling each event alone, for any delivery
// order, duplicates and batch sizes — one customer's events often share a
// batch, and an event that must wait for another's fails alone while the
// rest of its batch goes through.
func TestLifecyclesInBatchesAsOneByOne(t *testing.T) {
	defaultRapidChecks(t, 10)
	rapid.Check(t, func(rt *rapid.T) {
		tb := rapidTB{TB: t, rt: rt}
		gen := genLifecycles(rt, tb)

		oneByOne := newDirectRun(tb)
		oneByOne.handleAll(tb, gen.events)

		shuffled := drawDeliveries(rt, gen.events, 1, 2)
		batched := newDirectRun(tb)
		batched.handleAllInBatches(tb, shuffled, func(left int) int {
			return rapid.IntRange(1, min(left, 24)).Draw(rt, "batch size")
		})

		compareStates(tb, oneByOne.state(tb), batched.state(tb), !gen.sharedEmail)
		compareBilling(tb, oneByOne.billing(tb), batched.billing(tb), !gen.emailOnlyCheckout)
	})
}

// handleAllInBatches delivers events through HandleBatch in batches of
// size(left) messages, redelivering in later rounds those that failed
// with a retryable error, as the consumer does.
func (r *directRun) handleAllInBatches(tb testing.TB, events []stripeEvent, size func(left int) int) {
	tb.Helper()
	queue := events
	for attempt := 1; len(queue) > 0; attempt++ {
		var again []stripeEvent
		for rest := queue; len(rest) > 0; {
			n := size(len(rest))
			batch := rest[:n]
			rest = rest[n:]
			ms := make([]*consumer.Message, len(batch))
			for i, e := range batch {
				ms[i] = &consumer.Message{Subject: wire.StripeEventSubject(e.Type), Data: e.Raw,
					Header: nats.Header{wire.HeaderMsgID: {e.ID}}, ID: e.ID, Attempt: attempt}
			}
			err := r.svc.HandleBatch(context.Background(), ms)
			var each consumer.Results
			switch {
			case err == nil:
				continue
			case errors.As(err, &each):
			default:
				tb.Fatalf("batch of %d failed as a whole: %v", len(batch), err)
			}
			for i, err := range each {
				switch {
				case err == nil:
				case errclass.Of(err).Retryable():
					again = append(again, batch[i])
				default:
					tb.Fatalf("%s %s: %v (%s)", batch[i].Type, batch[i].ID, err, errclass.Of(err))
				}
			}
		}
		if len(again) == len(queue) {
			tb.Fatalf("no progress: %d events keep failing", len(again))
		}
		queue = again
	}
}
