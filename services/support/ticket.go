package support

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// TicketData is what subject and body templates may use. It holds no
// secrets and no card data; the email is the customer's, which the support
// agent needs.
type TicketData struct {
	CanonicalID       string
	Email             string
	Name              string // the customer's name, else the email
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

// ticketData reads the validated fields of a billing event; final reports a
// last failed payment attempt.
func ticketData(m proto.Message) (d TicketData, final bool) {
	meta := m.(subjects.BillingEvent).GetMeta()
	d = TicketData{CanonicalID: meta.GetCanonicalCustomerId(), Email: meta.GetEmail(), Name: meta.GetEmail(), NextAttempt: "never"}
	if cus := meta.GetStripeCustomerId(); cus != "" {
		d.StripeCustomerURL = "https://dashboard.stripe.com/" + testPath(meta.GetLivemode()) + "customers/" + cus
	}
	switch ev := m.(type) {
	case *billingv1.PaymentFailed:
		d.Amount, d.Attempt, d.InvoiceID = money(ev.GetAmount(), ev.GetCurrency()), int(ev.GetAttemptCount()), ev.GetInvoiceId()
		if t := ev.GetNextPaymentAttempt(); t != nil && !ev.GetFinal() {
			d.NextAttempt = t.AsTime().UTC().Format(time.RFC1123)
		}
		final = ev.GetFinal()
	case *billingv1.SubscriptionCanceled:
		d.Plan, d.AtPeriodEnd, d.Reason = planName(ev.GetSubscription().GetPlan()), ev.GetAtPeriodEnd(), ev.GetCancellationReason()
	case *billingv1.DisputeOpened:
		dp := ev.GetDispute()
		d.Amount, d.DisputeID, d.Reason = money(dp.GetAmount(), dp.GetCurrency()), dp.GetDisputeId(), dp.GetReason()
		if t := ev.GetEvidenceDueBy(); t != nil {
			d.EvidenceDueBy = t.AsTime().UTC().Format(time.RFC1123)
		}
	case *billingv1.DisputeClosed:
		dp := ev.GetDispute()
		d.Amount, d.DisputeID, d.Reason = money(dp.GetAmount(), dp.GetCurrency()), dp.GetDisputeId(), dp.GetReason()
	case *billingv1.RefundIssued:
		d.Amount, d.Reason = money(ev.GetAmount(), ev.GetCurrency()), ev.GetReason()
	case *billingv1.PaymentSucceeded:
		d.Amount, d.InvoiceID = money(ev.GetAmount(), ev.GetCurrency()), ev.GetInvoiceId()
	}
	if sub, ok := m.(interface {
		GetSubscription() *billingv1.Subscription
	}); ok && d.Plan == "" {
		d.Plan = planName(sub.GetSubscription().GetPlan())
	}
	return d, final
}

func testPath(live bool) string {
	if live {
		return ""
	}
	return "test/"
}

func planName(p *billingv1.Plan) string {
	if p.GetProductName() != "" {
		return p.GetProductName()
	}
	return p.GetPriceId()
}

// money renders minor units of a two-decimal currency; zero-decimal
// currencies (jpy, krw, …) are shown as they are.
func money(minor int64, currency string) string {
	cur := strings.ToUpper(currency)
	if zeroDecimal[strings.ToLower(currency)] {
		return strconv.FormatInt(minor, 10) + " " + cur
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	cents := strconv.FormatInt(minor%100, 10)
	if len(cents) == 1 {
		cents = "0" + cents
	}
	return strings.TrimSpace(sign + strconv.FormatInt(minor/100, 10) + "." + cents + " " + cur)
}

var zeroDecimal = map[string]bool{"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true,
	"mga": true, "pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true}
