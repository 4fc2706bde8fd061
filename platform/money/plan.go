package money

import billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"

// PlanName is what a person calls a plan: the product's name, else the
// price's nickname, else (neither known) the price id; "" for no plan.
// Every service that shows a plan (the CRM's plan property, ticket bodies,
// the customer view) names it with this.
func PlanName(p *billingv1.Plan) string {
	switch {
	case p.GetProductName() != "":
		return p.GetProductName()
	case p.GetPriceNickname() != "":
		return p.GetPriceNickname()
	}
	return p.GetPriceId()
}
