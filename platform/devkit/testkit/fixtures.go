package testkit

import (
	"embed"
	"path"
	"testing"
)

// Stripe fixtures copied byte-exact from shared/fixtures/stripe (see
// fixtures/README.md for their sources and licences).
//
//go:embed fixtures/stripe
var stripeFixtures embed.FS

// StripeEventNames lists the assembled event envelopes, e.g. "invoice.paid".
func StripeEventNames(t testing.TB) []string {
	t.Helper()
	entries, err := stripeFixtures.ReadDir("fixtures/stripe/events")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if path.Ext(n) == ".json" && n != "MANIFEST.json" && n != "signatures.json" {
			out = append(out, n[:len(n)-len(".json")])
		}
	}
	return out
}

// StripeEvent returns the exact bytes of events/<name>.json.
func StripeEvent(t testing.TB, name string) []byte {
	t.Helper()
	return StripeFile(t, "events/"+name+".json")
}

// StripeFile returns the exact bytes of a file under fixtures/stripe.
func StripeFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := stripeFixtures.ReadFile("fixtures/stripe/" + name)
	if err != nil {
		t.Fatalf("testkit: fixture %s: %v", name, err)
	}
	return b
}
