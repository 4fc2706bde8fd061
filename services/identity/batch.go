package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// HandleBatch handles a fetched batch of Stripe events (consumer.NewBatch):
// their customers are resolved in one transaction, in the order the stream
// holds them (Store.ResolveBatch), and then every event's domain events are
// published at once. An event the batch cannot resolve — a same-second tie
// of versions to settle with Stripe, a customer not found — is handled
// alone afterwards, as Handle handles any event. Each message is settled by
// its own outcome (consumer.Results): one event waiting for another's is
// retried alone while the rest of its batch is acked.
func (s *Service) HandleBatch(ctx context.Context, ms []*consumer.Message) error {
	out := make(consumer.Results, len(ms))
	items := make([]batchItem, 0, len(ms))
	for i, m := range ms {
		f, ev, err := readEvent(m)
		if err != nil {
			out[i] = err
			continue
		}
		items = append(items, batchItem{m: m, at: i, f: f, ev: ev})
	}
	ins := make([]Input, len(items))
	for j := range items {
		ins[j] = s.resolutionInput(items[j].f)
	}
	res, errs, err := s.store.ResolveBatch(ctx, ins)
	if err != nil {
		return fmt.Errorf("resolve customers: %w", err) // the batch's: every message shares it
	}
	for j := range items {
		it := &items[j]
		mctx := it.m.Context(ctx)
		switch err := errs[j]; {
		case errors.Is(err, ErrVersionTie) || errors.Is(err, ErrUnknownCustomer):
			out[it.at] = s.Handle(mctx, it.m) // with the Stripe API, if any, as a single event
			it.done = true
		case err != nil:
			out[it.at] = fmt.Errorf("resolve customer: %w", err)
			it.done = true
		default:
			it.m.Customer = res[j].CanonicalID
			it.outs, out[it.at] = s.domainEvents(logging.WithCustomerID(mctx, res[j].CanonicalID), it.ev, it.f, res[j])
			it.done = out[it.at] != nil
		}
	}
	s.publishBatch(ctx, items, out)
	for _, err := range out {
		if err != nil {
			return out
		}
	}
	return nil
}

// batchItem is one event of a batch on its way through HandleBatch.
type batchItem struct {
	m    *consumer.Message
	at   int // its index in the batch
	f    Facts
	ev   *stripe.Event
	outs []Outgoing
	done bool // settled without publishing (alone, or failed)
}

// publishBatch publishes every resolved event's domain events, in the
// batch's order and each under its own message's trace, without waiting
// for each PubAck in turn, then records each message's outcome in out: a
// message is done only once all its domain events are stored.
func (s *Service) publishBatch(ctx context.Context, items []batchItem, out consumer.Results) {
	pending := make([][]natsbus.Pending, len(items))
	for j := range items {
		it := &items[j]
		if it.done || len(it.outs) == 0 {
			continue
		}
		pending[j], out[it.at] = s.send(logging.WithCustomerID(it.m.Context(ctx), it.m.Customer), it.outs)
	}
	for j := range items {
		it := &items[j]
		if pending[j] != nil {
			out[it.at] = s.await(it.m.Context(ctx), it.outs, pending[j])
		}
	}
}
