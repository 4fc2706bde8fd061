package support

import (
	"net/url"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/money"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

// TicketData is what subject and body templates may use. It holds no
// secrets and no card data; the email is the customer's, which the support
// agent needs. Every string in it came from outside (Stripe, through
// identity) and has been through zendesk.Value: one clean line of inert
// plain text, so a template cannot turn data into markup.
type TicketData struct {
	CanonicalID       string
	Email             string
	Name              string // the customer's email: billing events carry no name (identity keeps it; see billing.customer.upserted)
	Amount            string // "49.00 USD"
	Plan              string
	Attempt           int
	NextAttempt       string // RFC 1123 date, or "never"
	InvoiceID         string
	DisputeID         string
	Reason            string
	EvidenceDueBy     string
	AtPeriodEnd       bool
	StripeCustomerURL string
}

var sampleData = TicketData{
	CanonicalID: "cust_sample", Email: "ada@example.com", Name: "Ada", Amount: "49.00 USD", Plan: "Pro", Attempt: 1,
	NextAttempt: "Mon, 02 Jan 2026", InvoiceID: "in_sample", DisputeID: "dp_sample", Reason: "fraudulent",
	EvidenceDueBy: "Mon, 09 Jan 2026", StripeCustomerURL: "https://dashboard.stripe.com/customers/cus_sample",
}

// ticketData reads the validated fields of a billing event, each encoded
// with zendesk.Value; final reports a last failed payment attempt.
func ticketData(m proto.Message) (d TicketData, final bool) {
	d, final = rawTicketData(m)
	for _, f := range []*string{&d.CanonicalID, &d.Email, &d.Name, &d.Amount, &d.Plan, &d.NextAttempt, &d.InvoiceID,
		&d.DisputeID, &d.Reason, &d.EvidenceDueBy, &d.StripeCustomerURL} {
		*f = zendesk.Value(*f)
	}
	return d, final
}

func rawTicketData(m proto.Message) (d TicketData, final bool) {
	meta := m.(subjects.BillingEvent).GetMeta()
	d = TicketData{CanonicalID: meta.GetCanonicalCustomerId(), Email: meta.GetEmail(), Name: meta.GetEmail(), NextAttempt: "never"}
	if cus := meta.GetStripeCustomerId(); cus != "" {
		// One path segment, whatever the id holds: the link stays on
		// Stripe's dashboard.
		d.StripeCustomerURL = "https://dashboard.stripe.com/" + testPath(meta.GetLivemode()) + "customers/" + url.PathEscape(cus)
	}
	switch ev := m.(type) {
	case *billingv1.PaymentFailed:
		d.Amount, d.Attempt, d.InvoiceID = money.Format(ev.GetAmount(), ev.GetCurrency()), int(ev.GetAttemptCount()), ev.GetInvoiceId()
		if t := ev.GetNextPaymentAttempt(); t != nil && !ev.GetFinal() {
			d.NextAttempt = t.AsTime().UTC().Format(time.RFC1123)
		}
		final = ev.GetFinal()
	case *billingv1.SubscriptionCanceled:
		d.Plan, d.AtPeriodEnd, d.Reason = money.PlanName(ev.GetSubscription().GetPlan()), ev.GetAtPeriodEnd(), ev.GetCancellationReason()
	case *billingv1.DisputeOpened:
		dp := ev.GetDispute()
		d.Amount, d.DisputeID, d.Reason = money.Format(dp.GetAmount(), dp.GetCurrency()), dp.GetDisputeId(), dp.GetReason()
		if t := ev.GetEvidenceDueBy(); t != nil {
			d.EvidenceDueBy = t.AsTime().UTC().Format(time.RFC1123)
		}
	case *billingv1.DisputeClosed:
		dp := ev.GetDispute()
		d.Amount, d.DisputeID, d.Reason = money.Format(dp.GetAmount(), dp.GetCurrency()), dp.GetDisputeId(), dp.GetReason()
	case *billingv1.RefundIssued:
		d.Amount, d.Reason = money.Format(ev.GetAmount(), ev.GetCurrency()), ev.GetReason()
	case *billingv1.PaymentSucceeded:
		d.Amount, d.InvoiceID = money.Format(ev.GetAmount(), ev.GetCurrency()), ev.GetInvoiceId()
	}
	if sub, ok := m.(interface {
		GetSubscription() *billingv1.Subscription
	}); ok && d.Plan == "" {
		d.Plan = money.PlanName(sub.GetSubscription().GetPlan())
	}
	return d, final
}

func testPath(live bool) string {
	if live {
		return ""
	}
	return "test/"
}
