package crm

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/platform/emailaddr"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// batcher turns concurrent single-contact upserts into HubSpot batch calls:
// the first request opens a batch that closes when it holds maxInputs
// contacts, when every update that could still join it is in, or when
// linger has passed — so a lone event waits at most linger while a burst
// goes out in full calls. "Could still join" is counted with tickets: a
// handler takes one before its ledger claim (enter) and spends it on its
// upsert or gives it back (done) when it will not upsert (already done,
// no contact to update, failed); a batch closes once no ticket is
// outstanding. The handlers of one pull (HandleBatch) take theirs together
// before any of them starts, so their updates go out in one call.
//
// HubSpot refuses duplicate ids in a batch, so an update of an email the
// forming batch already carries is coalesced into that contact's input:
// the properties of the later message overlay the earlier's (a later ""
// still clears), which leaves the contact as sending the two one after
// the other would — HubSpot's upsert sets exactly the properties an input
// names. Every caller merged into an input gets that input's result, the
// contact's id or its error. One request then spends one input on all of
// a customer's updates that come together (a new customer's created,
// subscription and invoice events arrive from Stripe back to back).
//
// Arrival order is not stream order: a pull's handlers start together and
// reach the batcher in whatever order their ledger claims finish, so
// updates merged into one input overlay in their messages' stream order
// (the ticket carries it), as sending them one after the other in stream
// order would leave the contact. Across calls, and for a retried message
// that comes back after its successors, the order is arrival's. What keeps
// a late event from moving plan, status or MRR backwards is identity's
// superseded flag (contactUpdate then leaves those properties out), and
// that holds merged or not.
//
// The hazard of merging: HubSpot judges the merged input as one, so a
// per-input refusal (a 207 error) of it fails every merged caller, even
// one whose own update alone would have passed. Our properties are our
// own definitions and every value is cleaned (PropertyValue), so the one
// such refusal in practice is INVALID_EMAIL, which all of them share.
type batcher struct {
	up        Upserter
	maxInputs int // contacts a call carries at most (HubSpot's batch limit)
	linger    time.Duration
	// pending counts the tickets out: handlers that may still send an
	// update. Run reads it to close a batch, and nudge wakes it when a
	// ticket is given back unspent.
	pending atomic.Int64
	nudge   chan struct{}
	// coalesce merges an update into the forming batch's input for its
	// email; off, the update is held for the next call instead (the
	// behaviour before coalescing, kept as the benchmark's baseline).
	coalesce bool
	// peer is HubSpot's address for each caller's client span (the
	// Upserter's BaseURL, when it has one).
	peer    []attribute.KeyValue
	reqs    chan *batchReq
	stopped chan struct{} // closed when Run has returned
}

type batchReq struct {
	ctx  context.Context
	in   hubspot.ContactInput
	seq  uint64 // its message's stream sequence: merged updates overlay in this order
	done chan batchRes
}

type batchRes struct {
	id   string
	err  error
	call trace.SpanContext // the span of the HTTP call that carried it
}

// newBatcher returns a coalescing batcher.
func newBatcher(up Upserter, linger time.Duration) *batcher {
	return &batcher{up: up, maxInputs: hubspot.MaxBatchInputs, linger: linger, coalesce: true,
		peer: peerOf(up), reqs: make(chan *batchReq), nudge: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// ticket is one handler's say in when a batch closes (see batcher). It
// belongs to one goroutine.
type ticket struct {
	b     *batcher
	seq   uint64 // the holder's message's stream sequence (0 if none)
	spent bool   // its update went to Run, or it was given back
}

// enter takes a ticket: an update may come from its holder.
func (b *batcher) enter() *ticket {
	b.pending.Add(1)
	return &ticket{b: b}
}

// done gives the ticket back unless its update was sent: no update will
// come from its holder.
func (t *ticket) done() {
	if t.spent {
		return
	}
	t.spent = true
	t.b.pending.Add(-1)
	select {
	case t.b.nudge <- struct{}{}:
	default: // Run has a nudge waiting already
	}
}

type ticketKey struct{}

// withTicket makes Upsert under ctx spend t.
func withTicket(ctx context.Context, t *ticket) context.Context {
	return context.WithValue(ctx, ticketKey{}, t)
}

// peerOf is the server address of up's API, for client spans.
func peerOf(up Upserter) []attribute.KeyValue {
	withBase, ok := up.(interface{ BaseURL() string })
	if !ok {
		return nil
	}
	u, err := url.Parse(withBase.BaseURL())
	if err != nil || u.Hostname() == "" {
		return nil
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	n, _ := strconv.Atoi(port)
	return []attribute.KeyValue{attribute.String("server.address", u.Hostname()), attribute.Int("server.port", n)}
}

// Upsert queues one contact and waits for its result. The wait is a client
// span toward HubSpot in the caller's own trace, linked to the HTTP call
// that carried the contact: a call is in one trace only (the batch's first
// caller's), so without it an update merged into another caller's entry,
// or batched behind it, would show no HubSpot call in its event's trace.
func (b *batcher) Upsert(ctx context.Context, in hubspot.ContactInput) (id string, err error) {
	ctx, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("github.com/switchyard/switchyard/services/crm").Start(ctx,
		"hubspot contact upsert", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(b.peer...))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, errclass.Of(err).String())
		}
		span.End()
	}()
	res, err := b.wait(ctx, in)
	if res.call.IsValid() {
		span.AddLink(trace.Link{SpanContext: res.call})
	}
	return res.id, err
}

// wait queues one contact and waits for its batch's answer. It spends
// ctx's ticket (withTicket), or one of its own taken now.
func (b *batcher) wait(ctx context.Context, in hubspot.ContactInput) (batchRes, error) {
	t, _ := ctx.Value(ticketKey{}).(*ticket)
	if t == nil || t.spent {
		t = b.enter()
	}
	r := &batchReq{ctx: ctx, in: in, seq: t.seq, done: make(chan batchRes, 1)}
	select {
	case b.reqs <- r:
		t.spent = true // Run counts it in
	case <-b.stopped:
		t.done()
		return batchRes{}, errStopping
	case <-ctx.Done():
		t.done()
		return batchRes{}, ctx.Err()
	}
	select {
	case res := <-r.done:
		return res, res.err
	case <-ctx.Done():
		return batchRes{}, ctx.Err() // the call may still happen: upserts are idempotent
	}
}

// entry is one contact's input in a batch and the callers it answers.
type entry struct {
	in     hubspot.ContactInput
	reqs   []*batchReq // in arrival order
	merged bool        // in.Properties is our copy, not the first caller's map
}

// merge overlays another update of the same email, in stream order: one
// that comes after an update its message follows is laid under it instead.
func (e *entry) merge(r *batchReq) {
	later := !slices.ContainsFunc(e.reqs, func(o *batchReq) bool { return o.seq > r.seq })
	e.reqs = append(e.reqs, r)
	if later {
		if !e.merged {
			props := make(map[string]string, len(e.in.Properties)+len(r.in.Properties))
			maps.Copy(props, e.in.Properties)
			e.in.Properties, e.merged = props, true
		}
		maps.Copy(e.in.Properties, r.in.Properties)
		return
	}
	byStream := slices.Clone(e.reqs)
	slices.SortStableFunc(byStream, func(a, b *batchReq) int { return cmp.Compare(a.seq, b.seq) })
	props := map[string]string{}
	for _, o := range byStream {
		maps.Copy(props, o.in.Properties)
	}
	e.in.Properties, e.merged = props, true
}

// batch is the call being formed.
type batch struct {
	entries []*entry
	byEmail map[string]*entry
	callers int
}

// add puts r in the batch, merged into its email's entry when coalescing;
// false means r's email is already in and r must wait for a later call.
func (b *batch) add(r *batchReq, coalesce bool) bool {
	k := key(r.in.Email)
	if e, ok := b.byEmail[k]; ok {
		if !coalesce {
			return false
		}
		e.merge(r)
	} else {
		e := &entry{in: r.in, reqs: []*batchReq{r}}
		b.entries = append(b.entries, e)
		b.byEmail[k] = e
	}
	b.callers++
	return true
}

// Run forms and sends batches until ctx is cancelled; the batch being
// formed then is still sent (the consumer drains after us), so every
// update Run took is answered (with coalescing none is held back; without
// it the held ones get errStopping and are redelivered).
func (b *batcher) Run(ctx context.Context) error {
	defer close(b.stopped)
	var held []*batchReq // without coalescing: updates of an email already in a batch, oldest first
	for {
		// Held updates go first, one per email; the rest stay held.
		cur := &batch{byEmail: map[string]*entry{}}
		var still []*batchReq
		for _, r := range held {
			if !cur.add(r, false) {
				still = append(still, r)
			}
		}
		held = still
		if cur.callers == 0 {
			select {
			case r := <-b.reqs:
				b.pending.Add(-1)
				cur.add(r, b.coalesce)
			case <-ctx.Done():
				return nil
			}
		}
		timer := time.NewTimer(b.linger)
	collect:
		for len(cur.entries) < b.maxInputs && b.pending.Load() > 0 {
			select {
			case r := <-b.reqs:
				b.pending.Add(-1)
				if !cur.add(r, b.coalesce) {
					held = append(held, r)
				}
			case <-b.nudge: // a ticket came back: look again
			case <-timer.C:
				break collect
			case <-ctx.Done():
				timer.Stop()
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				b.send(sctx, cur)
				cancel()
				for _, r := range held {
					r.done <- batchRes{err: errStopping}
				}
				return nil
			}
		}
		timer.Stop()
		b.send(ctx, cur)
	}
}

func (b *batcher) send(ctx context.Context, cur *batch) {
	inputs := make([]hubspot.ContactInput, len(cur.entries))
	var links []trace.Link // every other caller's span (the first is the parent)
	for i, e := range cur.entries {
		inputs[i] = e.in
		for j, r := range e.reqs {
			if i > 0 || j > 0 {
				links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(r.ctx)})
			}
		}
	}
	// The call belongs to the first caller's trace and links to every other
	// caller's span, merged ones included; each caller's own client span
	// (Upsert) links back to it, so every event's trace shows the HubSpot
	// call that carried it.
	firstReq := cur.entries[0].reqs[0]
	first := trace.SpanFromContext(firstReq.ctx)
	ctx, span := first.TracerProvider().Tracer("github.com/switchyard/switchyard/services/crm").Start(
		trace.ContextWithSpanContext(ctx, first.SpanContext()), "hubspot batch upsert",
		trace.WithLinks(links...), trace.WithAttributes(
			attribute.Int("messaging.batch.message_count", cur.callers),
			attribute.Int("switchyard.hubspot.inputs", len(inputs))))
	defer span.End()
	results, err := b.up.UpsertContacts(ctx, inputs)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, errclass.Of(err).String())
	}
	for i, e := range cur.entries {
		var res batchRes
		switch {
		case err != nil && len(results) != len(inputs):
			res = batchRes{err: err}
		case i < len(results) && results[i].Err != nil:
			res = batchRes{err: results[i].Err}
		case i < len(results) && results[i].ID != "":
			res = batchRes{id: results[i].ID}
		case err != nil:
			res = batchRes{err: err} // the call failed before this contact's turn
		default:
			res = batchRes{err: errMissingResult}
		}
		res.call = span.SpanContext()
		for _, r := range e.reqs {
			r.done <- res
		}
	}
}

// key is the form two updates of one contact share (HubSpot compares
// emails in it).
func key(email string) string { return emailaddr.Normalize(email) }

// errStopping answers updates that arrive while the service shuts down;
// the message is handed back and redelivered.
var errStopping = errclass.Transient(errors.New("crm is stopping"))
