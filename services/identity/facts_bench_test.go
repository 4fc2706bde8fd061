package identity

import (
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// BenchmarkExtractFacts decodes each of the Stripe fixtures in turn (one
// scan for the envelope and data.object's head, then its typed object).
func BenchmarkExtractFacts(b *testing.B) {
	var events [][]byte
	size := 0
	for _, name := range testkit.StripeEventNames(b) {
		raw := testkit.StripeEvent(b, name)
		events = append(events, raw)
		size += len(raw)
	}
	b.SetBytes(int64(size / len(events)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := ExtractFacts(events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
	}
}
