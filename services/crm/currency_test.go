package crm_test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// TestMRRInTheCurrencysMajorUnits: Stripe states amounts in the currency's
// minor unit, which for zero-decimal currencies (JPY, KRW, …) is the whole
// unit and for three-decimal ones (KWD, BHD, …) a thousandth. The MRR
// HubSpot shows must be the plan's price in major units whatever the
// currency: ¥1,000 a month is 1000, not 10.00.
func TestMRRInTheCurrencysMajorUnits(t *testing.T) {
	e := start(t)
	active := billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE
	sub := func(id string, mrr int64, currency string) *billingv1.Subscription {
		return &billingv1.Subscription{SubscriptionId: id, Status: active, Plan: &billingv1.Plan{
			PriceId: "price_" + currency, ProductName: "Pro", Quantity: 1, AmountPerInterval: mrr, Currency: currency,
			Interval: billingv1.Interval_INTERVAL_MONTH, IntervalCount: 1, Mrr: mrr,
		}}
	}
	tests := []struct {
		name    string
		events  func(m func(string) *billingv1.EventMeta) []subjects.BillingEvent
		wantMRR string
	}{
		{"jpy", func(m func(string) *billingv1.EventMeta) []subjects.BillingEvent {
			return []subjects.BillingEvent{&billingv1.SubscriptionStarted{Meta: m("s"), Subscription: sub("sub_jpy", 1000, "jpy")}}
		}, "1000"},
		{"krw", func(m func(string) *billingv1.EventMeta) []subjects.BillingEvent {
			return []subjects.BillingEvent{
				&billingv1.SubscriptionStarted{Meta: m("s"), Subscription: sub("sub_krw", 50000, "krw")},
				&billingv1.PaymentSucceeded{Meta: m("p"), InvoiceId: "in_krw", SubscriptionId: "sub_krw", Amount: 50000, Currency: "krw"},
			}
		}, "50000"},
		{"jpy-canceling", func(m func(string) *billingv1.EventMeta) []subjects.BillingEvent {
			return []subjects.BillingEvent{&billingv1.SubscriptionCanceled{Meta: m("c"), Subscription: sub("sub_jpy2", 3000, "jpy"), AtPeriodEnd: true}}
		}, "3000"},
		{"kwd", func(m func(string) *billingv1.EventMeta) []subjects.BillingEvent {
			return []subjects.BillingEvent{&billingv1.SubscriptionStarted{Meta: m("s"), Subscription: sub("sub_kwd", 12500, "kwd")}}
		}, "12.500"},
		{"usd", func(m func(string) *billingv1.EventMeta) []subjects.BillingEvent {
			return []subjects.BillingEvent{&billingv1.SubscriptionStarted{Meta: m("s"), Subscription: sub("sub_usd", 4900, "usd")}}
		}, "49.00"},
	}
	published := 0
	for _, tt := range tests {
		m := func(suffix string) *billingv1.EventMeta {
			mt := meta(tt.name + "-" + suffix)
			mt.CanonicalCustomerId, mt.StripeCustomerId, mt.Email = "cust_"+tt.name, "cus_"+tt.name, tt.name+"@example.com"
			return mt
		}
		for _, ev := range tt.events(m) {
			e.publish(t, ev)
			published++
		}
	}
	testkit.WaitFor(t, 20*time.Second, "every event synced", func() bool {
		return len(e.outcomes(t, subjects.CRMContactSynced)) == published
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := e.hub.ContactByEmail(tt.name + "@example.com")
			if !ok {
				t.Fatalf("no contact for %s@example.com in HubSpot", tt.name)
			}
			if got, want := c.Properties["switchyard_mrr"], tt.wantMRR; got != want {
				t.Errorf("switchyard_mrr = %q, want %q", got, want)
			}
		})
	}
}
