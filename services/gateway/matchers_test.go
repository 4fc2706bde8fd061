package gateway

import (
	"regexp"
	"strings"
	"testing"
)

// The regular expressions the hand-written matchers implement.
var matcherSpecs = []struct {
	name string
	re   *regexp.Regexp
	fn   matcher
}{
	{"event id", regexp.MustCompile(`^evt_[A-Za-z0-9]{8,250}$`), isEventID},
	{"event type", regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,5}$`), isEventType},
	{"api version", regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[a-z]+)?$`), isAPIVersion},
	{"object id", regexp.MustCompile(`^[a-z]{1,10}_[A-Za-z0-9_]{1,250}$`), isObjectID},
	{"object kind", regexp.MustCompile(`^[a-z][a-z_.]{0,63}$`), isObjectKind},
	{"customer id", regexp.MustCompile(`^cus_[A-Za-z0-9]{1,250}$`), isCustomerID},
	{"currency", regexp.MustCompile(`^[a-z]{3}$`), isCurrency},
	{"status", regexp.MustCompile(`^[a-z][a-z_]{0,63}$`), isStatus},
}

var matcherSamples = []string{
	"", "evt_", "evt_1234567", "evt_12345678", "evt_1O59vsGgdF1VjufLNnhVwvTi", "evt_abc-def12", "evt_" + strings.Repeat("a", 250), "evt_" + strings.Repeat("a", 251),
	"invoice.paid", "customer.subscription.updated", "invoice", "invoice.", ".paid", "a.b.c.d.e.f", "a.b.c.d.e.f.g", "Invoice.paid", "invoice..paid", "invoice.1paid", "a_b.c_1",
	"2023-10-16", "2024-09-30.acacia", "2024-09-30.", "2024-09-30.Acacia", "2023-10-1", "20231016", "2023-10-16x",
	"cus_OnMHOpJU2HN6Xv", "cs_test_a13BtkHz", "_abc", "abcdefghijk_x", "abcdefghij_x", "in_", "pi_3O53wc", "cus_", "cus_a-b",
	"checkout.session", "payment_intent", "a", "A", "usd", "USD", "us", "usdd", "past_due", "needs_response", "_x", "x" + strings.Repeat("y", 63), "x" + strings.Repeat("y", 64),
}

func TestMatchersAgreeWithRegexps(t *testing.T) {
	for _, m := range matcherSpecs {
		for _, s := range matcherSamples {
			if got, want := m.fn(s), m.re.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, regexp says %v", m.name, s, got, want)
			}
		}
	}
}

func FuzzMatchersAgreeWithRegexps(f *testing.F) {
	for _, s := range matcherSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, m := range matcherSpecs {
			if got, want := m.fn(s), m.re.MatchString(s); got != want {
				t.Fatalf("%s(%q) = %v, regexp says %v", m.name, s, got, want)
			}
		}
	})
}
