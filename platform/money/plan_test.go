package money_test

import (
	"testing"

	"github.com/switchyard/switchyard/platform/money"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
)

func TestPlanName(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan *billingv1.Plan
		want string
	}{
		{"product name first", &billingv1.Plan{PriceId: "price_1", PriceNickname: "Pro monthly", ProductName: "Pro"}, "Pro"},
		{"then the price's nickname", &billingv1.Plan{PriceId: "price_1", PriceNickname: "Pro monthly"}, "Pro monthly"},
		{"the id only when nothing names it", &billingv1.Plan{PriceId: "price_1"}, "price_1"},
		{"no plan", nil, ""},
	} {
		if got := money.PlanName(tc.plan); got != tc.want {
			t.Errorf("%s: PlanName = %q, want %q", tc.name, got, tc.want)
		}
	}
}
