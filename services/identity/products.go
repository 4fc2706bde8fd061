package identity

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/errclass"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
)

// How plans are named from the Stripe API. A webhook names a price's
// product by id only (Stripe expands it only on request), so without this
// every plan would be shown by its price id.
const (
	productNamesSize = 1000 // products remembered; more are evicted, soonest expiring first
	productNameTTL   = time.Hour
	// productRetryIn is how long a product whose lookup failed goes without
	// a name before Stripe is asked again (longer if Stripe's Retry-After
	// says so): the name is cosmetic and Stripe must not be hammered.
	productRetryIn = time.Minute
	// productLookupTimeout bounds how long an event waits for its names.
	productLookupTimeout = 2 * time.Second
)

// productNames names products through the Stripe API, asking once per
// product per productNameTTL: concurrent misses for one product wait for a
// single lookup, and a failed lookup is not repeated for productRetryIn.
// A lookup never fails the caller: it answers "" (no name) instead, after
// at most its timeout. It is safe for concurrent use.
type productNames struct {
	lookup  func(ctx context.Context, productID string) (string, error)
	log     *slog.Logger
	now     func() time.Time
	size    int
	timeout time.Duration

	mu      sync.Mutex
	entries map[string]*productEntry
}

type productEntry struct {
	name    string    // "" until a lookup succeeds; kept when a later one fails
	expires time.Time // when to ask Stripe again
	warned  time.Time // the last failure logged at warn level
	// inflight is closed when the lookup in flight ends; nil when none is.
	inflight chan struct{}
}

func newProductNames(lookup func(context.Context, string) (string, error), log *slog.Logger, now func() time.Time, size int) *productNames {
	return &productNames{lookup: lookup, log: log, now: now, size: size, timeout: productLookupTimeout, entries: make(map[string]*productEntry)}
}

// Name returns the product's name, or "" if it is not known: the lookup
// failed within productRetryIn, it takes longer than the timeout, or ctx
// ends first. A name past its TTL is returned at once by everyone except
// the one caller that asks Stripe again.
func (p *productNames) Name(ctx context.Context, productID string) string {
	p.mu.Lock()
	e := p.entries[productID]
	switch {
	case e != nil && e.inflight == nil && p.now().Before(e.expires):
		name := e.name
		p.mu.Unlock()
		return name
	case e != nil && e.inflight != nil:
		if e.name != "" { // being refreshed: the old name will do
			name := e.name
			p.mu.Unlock()
			return name
		}
		wait := e.inflight
		p.mu.Unlock()
		select {
		case <-wait:
			p.mu.Lock()
			defer p.mu.Unlock()
			return e.name
		case <-ctx.Done():
			return ""
		}
	}
	if e == nil {
		p.makeRoom()
		e = &productEntry{}
		p.entries[productID] = e
	}
	done := make(chan struct{})
	e.inflight = done
	p.mu.Unlock()

	lookupCtx, cancel := context.WithTimeout(ctx, p.timeout)
	name, err := p.lookup(lookupCtx, productID)
	cancel()

	p.mu.Lock()
	e.inflight = nil
	close(done)
	now := p.now()
	var retryIn time.Duration
	level := slog.LevelDebug
	switch {
	case err == nil:
		e.name, e.expires = name, now.Add(productNameTTL)
	case ctx.Err() != nil:
		// The caller went away (shutdown), not Stripe: the next event asks.
	default:
		retryIn = max(productRetryIn, errclass.RetryHint(err))
		e.expires = now.Add(retryIn)
		if e.warned.IsZero() || now.Sub(e.warned) >= productNameTTL {
			level, e.warned = slog.LevelWarn, now
		}
	}
	name = e.name // a failed refresh keeps the name read before
	p.mu.Unlock()
	if retryIn > 0 {
		p.log.Log(ctx, level, "could not read a product's name from the Stripe API; its plans go out with the name read before, if any",
			"product_id", productID, "retry_in", retryIn.String(), "error", err)
	}
	return name
}

// makeRoom evicts entries until one more fits: the expired first, then the
// soonest to expire. Lookups in flight stay. The caller holds p.mu.
func (p *productNames) makeRoom() {
	if len(p.entries) < p.size {
		return
	}
	now := p.now()
	for id, e := range p.entries {
		if e.inflight == nil && !now.Before(e.expires) {
			delete(p.entries, id)
		}
	}
	for len(p.entries) >= p.size {
		var victim string
		var soonest time.Time
		for id, e := range p.entries {
			if e.inflight == nil && (victim == "" || e.expires.Before(soonest)) {
				victim, soonest = id, e.expires
			}
		}
		if victim == "" {
			return // all in flight: the map grows by one for a while
		}
		delete(p.entries, victim)
	}
}

// nameProducts fills in the product name of every plan in outs that names
// its product by id only (a subscription's plan, and the previous plan of
// an upgrade or downgrade). The products are looked up concurrently, so an
// event waits at most one lookup timeout; a plan whose name is not found
// is published without it. Message ids do not depend on names.
func (p *productNames) nameProducts(ctx context.Context, outs []Outgoing) {
	byProduct := map[string][]*billingv1.Plan{}
	for _, o := range outs {
		for _, pl := range plansOf(o.Message) {
			if pl.GetProductId() != "" && pl.GetProductName() == "" {
				byProduct[pl.GetProductId()] = append(byProduct[pl.GetProductId()], pl)
			}
		}
	}
	if len(byProduct) == 0 {
		return
	}
	var wg sync.WaitGroup
	for id, plans := range byProduct {
		wg.Go(func() { // each plan is written by its product's goroutine only
			name := p.Name(ctx, id)
			for _, pl := range plans {
				pl.ProductName = name
			}
		})
	}
	wg.Wait()
}

// plansOf returns the plans a billing event carries.
func plansOf(m proto.Message) []*billingv1.Plan {
	var out []*billingv1.Plan
	if s, ok := m.(interface {
		GetSubscription() *billingv1.Subscription
	}); ok && s.GetSubscription().GetPlan() != nil {
		out = append(out, s.GetSubscription().GetPlan())
	}
	if s, ok := m.(interface{ GetPreviousPlan() *billingv1.Plan }); ok && s.GetPreviousPlan() != nil {
		out = append(out, s.GetPreviousPlan())
	}
	return out
}
