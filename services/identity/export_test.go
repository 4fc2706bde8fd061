package identity

import "net/http"

// NewStripeReader is the Stripe API client identity runs with when
// STRIPE_API_KEY is set, for the external tests of how it reads Stripe's
// answers.
func NewStripeReader(key, base string, hc *http.Client) StripeReader {
	return newStripeAPI(key, base, hc)
}
