package identity

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// NewStripeReader is the Stripe API client identity runs with when
// STRIPE_API_KEY is set, for the external tests of how it reads Stripe's
// answers.
func NewStripeReader(key, base string, hc *http.Client) StripeReader {
	return newStripeAPI(key, base, hc)
}

// ProductNames is the cache that names plans by their product, for the
// external tests of its policy with a fake lookup and clock.
type ProductNames = productNames

// The cache's policy, as identity runs it.
const (
	ProductNameTTL       = productNameTTL
	ProductRetryIn       = productRetryIn
	ProductLookupTimeout = productLookupTimeout
)

// NewProductNames is newProductNames with the lookup timeout given.
func NewProductNames(lookup func(context.Context, string) (string, error), log *slog.Logger, now func() time.Time, size int, timeout time.Duration) *ProductNames {
	p := newProductNames(lookup, log, now, size)
	p.timeout = timeout
	return p
}

// Len is how many products the cache holds.
func (p *productNames) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Planned is how many events the store's batch plans have resolved, in
// transactions that did not fail as a whole.
func (s *Store) Planned() int64 { return s.planned.Load() }
