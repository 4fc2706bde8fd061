package gateway_test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/stripesig"
	"github.com/switchyard/switchyard/services/gateway"
)

func BenchmarkValidate(b *testing.B) {
	body := testkit.StripeEvent(b, "invoice.paid")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gateway.Validate(body, gateway.PinnedAPIVersion); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	body := testkit.StripeEvent(b, "invoice.paid")
	v, _ := stripesig.NewVerifier([]string{"whsec_a", "whsec_b"}, 0, nil)
	h := stripesig.Sign(body, time.Now(), "whsec_b")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(body, h); err != nil {
			b.Fatal(err)
		}
	}
}
