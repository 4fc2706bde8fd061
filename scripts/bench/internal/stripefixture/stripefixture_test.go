package stripefixture_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripefixture"
)

const fixturePath = "../../../../platform/testkit/fixtures/stripe/events/customer.created.json"

func TestSignedBodyVerifiesWithStripeGo(t *testing.T) {
	t.Parallel()
	tmpl, err := stripefixture.Load(fixturePath)
	if err != nil {
		t.Fatalf("load fixture (the in-repo copy at %s): %v", fixturePath, err)
	}
	const secret = "whsec_test_secret"
	id := tmpl.ID(42)
	body := tmpl.Body(id)
	header := stripefixture.SignatureHeader(secret, time.Now().Unix(), body)

	ev, err := webhook.ConstructEventWithOptions(body, header, secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		t.Fatalf("ConstructEvent: %v", err)
	}
	if got, want := ev.ID, id; got != want {
		t.Errorf("event id = %q, want %q", got, want)
	}
	if got, want := string(ev.Type), tmpl.Type(); got != want {
		t.Errorf("event type = %q, want %q", got, want)
	}
}

func TestIDsAreUniqueAndStripeShaped(t *testing.T) {
	t.Parallel()
	tmpl, err := stripefixture.Parse([]byte(`{"id":"evt_1O59vsGgdF1VjufLNnhVwvTi","type":"customer.created"}`))
	if err != nil {
		t.Fatal(err)
	}
	shape := regexp.MustCompile(`^evt_[0-9A-Za-z]{24}$`)
	seen := make(map[string]bool)
	for seq := range uint64(10000) {
		id := tmpl.ID(seq)
		if !shape.MatchString(id) {
			t.Fatalf("id %q does not look like a Stripe event id", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated at seq %d", id, seq)
		}
		seen[id] = true
	}
}

func TestParseRejectsFixtureWithoutID(t *testing.T) {
	t.Parallel()
	if _, err := stripefixture.Parse([]byte(`{"type":"customer.created"}`)); err == nil {
		t.Fatal("Parse succeeded, want error for a fixture without id")
	}
}
