package crm

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/emailaddr"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// batcher turns concurrent single-contact upserts into HubSpot batch calls:
// the first request opens a batch that closes when it holds max contacts,
// when every request that could come is already here (max is the number
// of callers, each waiting on its own), or when linger has passed — so a
// lone event waits at most linger while a burst goes out in full calls.
// Two updates of one email never share a call (HubSpot refuses duplicate
// ids in a batch); the later waits for the next one, which keeps their
// order.
type batcher struct {
	up      Upserter
	max     int
	linger  time.Duration
	reqs    chan *batchReq
	stopped chan struct{} // closed when Run has returned
}

type batchReq struct {
	ctx  context.Context
	in   hubspot.ContactInput
	done chan batchRes
}

type batchRes struct {
	id  string
	err error
}

func newBatcher(up Upserter, max int, linger time.Duration) *batcher {
	return &batcher{up: up, max: max, linger: linger, reqs: make(chan *batchReq), stopped: make(chan struct{})}
}

// Upsert queues one contact and waits for its result.
func (b *batcher) Upsert(ctx context.Context, in hubspot.ContactInput) (string, error) {
	r := &batchReq{ctx: ctx, in: in, done: make(chan batchRes, 1)}
	select {
	case b.reqs <- r:
	case <-b.stopped:
		return "", errStopping
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.id, res.err
	case <-ctx.Done():
		return "", ctx.Err() // the call may still happen: upserts are idempotent
	}
}

// Run forms and sends batches until ctx is cancelled; the batch being
// formed then is still sent (the consumer drains after us).
func (b *batcher) Run(ctx context.Context) error {
	defer close(b.stopped)
	var held []*batchReq // updates of an email already in a batch, oldest first
	for {
		// Held updates go first, one per email; the rest stay held.
		var batch, still []*batchReq
		emails := map[string]bool{}
		for _, r := range held {
			if emails[key(r.in.Email)] {
				still = append(still, r)
				continue
			}
			emails[key(r.in.Email)] = true
			batch = append(batch, r)
		}
		held = still
		if len(batch) == 0 {
			select {
			case r := <-b.reqs:
				emails[key(r.in.Email)] = true
				batch = append(batch, r)
			case <-ctx.Done():
				return nil
			}
		}
		timer := time.NewTimer(b.linger)
	collect:
		for len(batch) < b.max && len(batch)+len(held) < b.max {
			select {
			case r := <-b.reqs:
				if emails[key(r.in.Email)] {
					held = append(held, r)
					continue
				}
				emails[key(r.in.Email)] = true
				batch = append(batch, r)
			case <-timer.C:
				break collect
			case <-ctx.Done():
				timer.Stop()
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				b.send(sctx, batch)
				cancel()
				for _, r := range held {
					r.done <- batchRes{err: errStopping}
				}
				return nil
			}
		}
		timer.Stop()
		b.send(ctx, batch)
	}
}

func (b *batcher) send(ctx context.Context, batch []*batchReq) {
	inputs := make([]hubspot.ContactInput, len(batch))
	var links []trace.Link // the other events' spans (the first is the parent)
	for i, r := range batch {
		inputs[i] = r.in
		if i > 0 {
			links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(r.ctx)})
		}
	}
	// The call belongs to the first event's trace and links to the others',
	// so each event's trace shows the HubSpot call that carried it.
	first := trace.SpanFromContext(batch[0].ctx)
	ctx, span := first.TracerProvider().Tracer("github.com/switchyard/switchyard/services/crm").Start(
		trace.ContextWithSpanContext(ctx, first.SpanContext()), "hubspot batch upsert",
		trace.WithLinks(links...), trace.WithAttributes(attribute.Int("messaging.batch.message_count", len(batch))))
	defer span.End()
	results, err := b.up.UpsertContacts(ctx, inputs)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errclass.Of(err).String())
	}
	for i, r := range batch {
		switch {
		case err != nil && len(results) != len(batch):
			r.done <- batchRes{err: err}
		case i < len(results) && results[i].Err != nil:
			r.done <- batchRes{err: results[i].Err}
		case i < len(results) && results[i].ID != "":
			r.done <- batchRes{id: results[i].ID}
		case err != nil:
			r.done <- batchRes{err: err} // the call failed before this contact's turn
		default:
			r.done <- batchRes{err: errMissingResult}
		}
	}
}

// key is the form two updates of one contact share (HubSpot compares
// emails in it).
func key(email string) string { return emailaddr.Normalize(email) }

// errStopping answers updates that arrive while the service shuts down;
// the message is handed back and redelivered.
var errStopping = errclass.Transient(errors.New("crm is stopping"))
