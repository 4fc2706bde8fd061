package crm

import (
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/money"
	"github.com/switchyard/switchyard/platform/sinktext"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// HubSpot contact properties the service writes. The switchyard_* ones are
// created at start-up (hubspot.DefaultProperties); the others are HubSpot's.
const (
	propCanonicalID   = "switchyard_canonical_id"
	propStripeID      = "stripe_customer_id"
	propPlan          = "switchyard_plan"
	propStatus        = "switchyard_subscription_status"
	propMRR           = "switchyard_mrr"
	propLastPayment   = "switchyard_last_payment_status"
	propLifecycle     = "lifecyclestage"
	propFirstName     = "firstname"
	propLastName      = "lastname"
	lifecycleCustomer = "customer"
)

type withSubscription interface {
	GetSubscription() *billingv1.Subscription
}

// contactUpdate returns the contact a billing event implies: the email to
// upsert by and the properties the event knows. ok is false when the event
// has no email yet (nothing to upsert by).
func contactUpdate(m proto.Message) (email string, props map[string]string, ok bool) {
	be, isBilling := m.(subjects.BillingEvent)
	if !isBilling {
		return "", nil, false
	}
	meta := be.GetMeta()
	if meta.GetEmail() == "" {
		return "", nil, false
	}
	props = map[string]string{propCanonicalID: meta.GetCanonicalCustomerId()}
	if id := meta.GetStripeCustomerId(); id != "" {
		props[propStripeID] = id
	}
	current := !meta.GetSuperseded() // a late event never moves state backwards
	switch ev := m.(type) {
	case *billingv1.CustomerUpserted:
		// One clean line first: a name with a NUL, a tab or a bidi
		// override still splits where a reader sees the space.
		first, last, _ := strings.Cut(sinktext.Line(ev.GetName()), " ")
		if first != "" {
			props[propFirstName] = first
		}
		if last != "" { // a one-word name must not wipe a stored last name
			props[propLastName] = last
		}
	case *billingv1.SubscriptionCanceled:
		if current {
			sub := ev.GetSubscription()
			props[propPlan] = money.PlanName(sub.GetPlan())
			if ev.GetAtPeriodEnd() {
				props[propStatus] = "canceling"
				props[propMRR] = mrr(sub.GetPlan())
			} else {
				props[propStatus], props[propMRR] = "canceled", "0"
			}
		}
	case withSubscription:
		if current {
			sub := ev.GetSubscription()
			props[propPlan] = money.PlanName(sub.GetPlan())
			props[propStatus] = statusName(sub.GetStatus())
			props[propMRR] = mrr(sub.GetPlan())
			if s := sub.GetStatus(); s == billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE || s == billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_TRIALING {
				props[propLifecycle] = lifecycleCustomer
			}
		}
	case *billingv1.PaymentSucceeded:
		props[propLastPayment], props[propLifecycle] = "succeeded", lifecycleCustomer
	case *billingv1.PaymentFailed:
		props[propLastPayment] = "failed"
		if ev.GetFinal() {
			props[propLastPayment] = "failed_final"
		}
	case *billingv1.RefundIssued:
		props[propLastPayment] = "refunded"
	case *billingv1.DisputeOpened:
		props[propLastPayment] = "disputed"
	}
	return meta.GetEmail(), props, true
}

func statusName(s billingv1.SubscriptionStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SUBSCRIPTION_STATUS_"))
}

// mrr is the plan's MRR in major units of its currency, as HubSpot's number
// property takes it: ¥1,000 a month is 1000, $49 is 49.00 (Stripe's minor
// unit is not always a hundredth; see platform/money).
func mrr(p *billingv1.Plan) string {
	return money.Decimal(p.GetMrr(), p.GetCurrency())
}
