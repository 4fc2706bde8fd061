package identity

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
)

// testID is what the service would have resolved for the fixtures' customer.
var testID = Identity{
	CanonicalID:       "cc_0001",
	StripeCustomerID:  fxCustomer,
	Email:             "jenny.rosen@example.com",
	Name:              "Jenny Rosen",
	StripeCustomerIDs: []string{"cus_Zzz", fxCustomer}, // unsorted on purpose
}

// derive runs ExtractFacts and Derive and checks what every outgoing event
// must satisfy.
func derive(t *testing.T, raw []byte, id Identity, stale bool) []Outgoing {
	t.Helper()
	f, ev, err := ExtractFacts(raw)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := Derive(ev, f, id, stale)
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	checkEnvelopes(t, f, id, outs)
	return outs
}

func checkEnvelopes(t *testing.T, f Facts, id Identity, outs []Outgoing) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range outs {
		subj, err := subjects.Of(o.Message)
		if err != nil || subj != o.Subject {
			t.Errorf("Subject %q, but the message %T belongs on %q (%v)", o.Subject, o.Message, subj, err)
		}
		be, ok := o.Message.(subjects.BillingEvent)
		if !ok {
			t.Fatalf("%T is not a billing event", o.Message)
		}
		m := be.GetMeta()
		if m.GetEventId() != o.MsgID {
			t.Errorf("meta.event_id %q != MsgID %q", m.GetEventId(), o.MsgID)
		}
		// Facts about one Stripe object are keyed by the object (one payment
		// announced by two events is one message); state changes by the event.
		want := o.Subject + ":" + f.EventID
		if factSubjects[o.Subject] {
			want = o.Subject + ":" + factKey(o.Message)
		}
		if !strings.HasPrefix(o.MsgID, want) {
			t.Errorf("MsgID %q does not start with %q", o.MsgID, want)
		}
		if seen[o.MsgID] {
			t.Errorf("MsgID %q used twice", o.MsgID)
		}
		seen[o.MsgID] = true
		if !slices.Equal(m.GetSourceEventIds(), []string{f.EventID}) {
			t.Errorf("source_event_ids = %v", m.GetSourceEventIds())
		}
		if !m.GetOccurredAt().AsTime().Equal(f.Created) || m.GetLivemode() != f.Livemode {
			t.Errorf("occurred_at %v livemode %v; want %v %v", m.GetOccurredAt().AsTime(), m.GetLivemode(), f.Created, f.Livemode)
		}
		if m.GetCanonicalCustomerId() != id.CanonicalID {
			t.Errorf("canonical_customer_id = %q", m.GetCanonicalCustomerId())
		}
		if want := firstNonEmpty(id.StripeCustomerID, f.StripeCustomerID); m.GetStripeCustomerId() != want {
			t.Errorf("stripe_customer_id = %q, want %q", m.GetStripeCustomerId(), want)
		}
		if want := firstNonEmpty(id.Email, f.Email); m.GetEmail() != want {
			t.Errorf("email = %q, want %q", m.GetEmail(), want)
		}
		if m.GetUnverifiedEmail() != f.UnverifiedEmail {
			t.Errorf("unverified_email = %q, want the event's own %q", m.GetUnverifiedEmail(), f.UnverifiedEmail)
		}
		data, err := proto.Marshal(o.Message)
		if err != nil {
			t.Fatal(err)
		}
		back, err := subjects.Decode(o.Subject, data)
		if err != nil || !proto.Equal(back, o.Message) {
			t.Errorf("round trip on %s: %v", o.Subject, err)
		}
		for _, secret := range []string{"4242", "fingerprint", "S0gps5wtfE21rQ8P", "metadata", "evil"} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s carries %q", o.Subject, secret)
			}
		}
	}
}

func subjectList(outs []Outgoing) []string {
	s := make([]string, len(outs))
	for i, o := range outs {
		s[i] = o.Subject
	}
	return s
}

func wantSubjects(t *testing.T, outs []Outgoing, want ...string) {
	t.Helper()
	if got := subjectList(outs); !slices.Equal(got, want) {
		t.Fatalf("subjects = %v, want %v", got, want)
	}
}

// msg returns outs[i].Message as a T.
func msg[T proto.Message](t *testing.T, outs []Outgoing, i int) T {
	t.Helper()
	m, ok := outs[i].Message.(T)
	if !ok {
		t.Fatalf("outs[%d] is %T", i, outs[i].Message)
	}
	return m
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func wantEq[V comparable](t *testing.T, what string, got, want V) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// fixturePlan is the plan of the subscription fixtures: one seat at 20 usd a month.
func fixturePlan() *billingv1.Plan {
	return &billingv1.Plan{
		PriceId: "price_1NzlYfGgdF1VjufLh8T9h0N6", ProductId: "prod_OnMHDH6VBmYlTr", Quantity: 1,
		AmountPerInterval: 2000, Currency: "usd", Interval: billingv1.Interval_INTERVAL_MONTH, IntervalCount: 1, Mrr: 2000,
	}
}

func wantPlan(t *testing.T, what string, got, want *billingv1.Plan) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestDeriveFixtures(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		subjects []string
		stale    []string // subjects when the event is stale
		check    func(t *testing.T, outs []Outgoing)
	}{
		"customer.created": {
			subjects: []string{subjects.BillingCustomerUpserted},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.CustomerUpserted](t, outs, 0)
				wantEq(t, "email", m.GetEmail(), "jenny.rosen@example.com")
				wantEq(t, "name", m.GetName(), "Jenny Rosen")
				if !slices.Equal(m.GetStripeCustomerIds(), []string{fxCustomer, "cus_Zzz"}) {
					t.Errorf("stripe_customer_ids = %v, want sorted", m.GetStripeCustomerIds())
				}
				wantEq(t, "MsgID", outs[0].MsgID, "billing.customer.upserted:evt_1O59vsGgdF1VjufLNnhVwvTi")
			},
		},
		"customer.updated":           {subjects: []string{subjects.BillingCustomerUpserted}},
		"customer.updated.email-set": {subjects: []string{subjects.BillingCustomerUpserted}},
		"checkout.session.completed": {
			subjects: []string{subjects.BillingCustomerUpserted},
			stale:    []string{subjects.BillingCustomerUpserted}, // not a customer object version
		},
		"customer.subscription.created": {
			subjects: []string{subjects.BillingSubscriptionStarted},
			check: func(t *testing.T, outs []Outgoing) {
				s := msg[*billingv1.SubscriptionStarted](t, outs, 0).GetSubscription()
				wantEq(t, "subscription_id", s.GetSubscriptionId(), fxSubscription)
				wantEq(t, "status", s.GetStatus(), billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE)
				wantPlan(t, "plan", s.GetPlan(), fixturePlan())
				wantEq(t, "current_period_start", s.GetCurrentPeriodStart().AsTime(), unix(1698249660))
				wantEq(t, "current_period_end", s.GetCurrentPeriodEnd().AsTime(), unix(1700841660))
				if s.GetTrialEnd() != nil || s.GetCancelAt() != nil || s.GetCancelAtPeriodEnd() {
					t.Errorf("trial/cancel set on an active subscription: %v", s)
				}
				wantEq(t, "MsgID", outs[0].MsgID, "billing.subscription.started:evt_1O5EuiGgdF1VjufLZtb3fvOc")
			},
		},
		"customer.subscription.updated": {}, // metadata only
		"customer.subscription.deleted": {
			subjects: []string{subjects.BillingSubscriptionCanceled},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.SubscriptionCanceled](t, outs, 0)
				wantEq(t, "at_period_end", m.GetAtPeriodEnd(), false)
				wantEq(t, "cancel_at", m.GetCancelAt().AsTime(), unix(1698256800))
				wantEq(t, "reason", m.GetCancellationReason(), "cancellation_requested")
				wantEq(t, "status", m.GetSubscription().GetStatus(), billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_CANCELED)
				wantPlan(t, "plan", m.GetSubscription().GetPlan(), fixturePlan())
			},
		},
		"invoice.paid": {
			subjects: []string{subjects.BillingPaymentSucceeded},
			stale:    []string{subjects.BillingPaymentSucceeded},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.PaymentSucceeded](t, outs, 0)
				want := &billingv1.PaymentSucceeded{
					Meta: m.GetMeta(), InvoiceId: fxInvoice, ChargeId: "ch_3O5H0NGgdF1VjufL4E5nFQRj", PaymentIntentId: fxPaymentInt,
					Amount: 1000, Currency: "usd", AttemptCount: 2, BillingReason: "manual",
				}
				if !proto.Equal(m, want) {
					t.Errorf("got %v\nwant %v", m, want)
				}
				wantEq(t, "MsgID", outs[0].MsgID, "billing.payment.succeeded:"+fxInvoice)
			},
		},
		"invoice.payment_failed": {
			subjects: []string{subjects.BillingPaymentFailed},
			stale:    []string{subjects.BillingPaymentFailed},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.PaymentFailed](t, outs, 0)
				want := &billingv1.PaymentFailed{
					Meta: m.GetMeta(), InvoiceId: fxInvoice, ChargeId: "ch_3O5E8yGgdF1VjufLyUrixmc3", PaymentIntentId: fxPaymentInt,
					Amount: 1000, Currency: "usd", AttemptCount: 1, NextPaymentAttempt: ts(1698509106), Final: false,
					BillingReason: "manual",
				}
				if !proto.Equal(m, want) {
					t.Errorf("got %v\nwant %v", m, want)
				}
				wantEq(t, "MsgID", outs[0].MsgID, "billing.payment.failed:"+fxInvoice+":1")
			},
		},
		"charge.refunded": {
			subjects: []string{subjects.BillingRefundIssued},
			stale:    []string{subjects.BillingRefundIssued},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.RefundIssued](t, outs, 0)
				want := &billingv1.RefundIssued{
					Meta: m.GetMeta(), ChargeId: fxCharge, Amount: 100, Currency: "usd", ChargeFullyRefunded: true,
				}
				if !proto.Equal(m, want) {
					t.Errorf("got %v\nwant %v", m, want)
				}
				wantEq(t, "MsgID", outs[0].MsgID, "billing.refund.issued:"+fxCharge+":100")
			},
		},
		"charge.dispute.created": {
			subjects: []string{subjects.BillingDisputeOpened},
			stale:    []string{subjects.BillingDisputeOpened},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.DisputeOpened](t, outs, 0)
				want := &billingv1.Dispute{
					DisputeId: fxDispute, ChargeId: fxCharge, Amount: 1000, Currency: "usd",
					Reason: "general", Status: "warning_needs_response",
				}
				if !proto.Equal(m.GetDispute(), want) {
					t.Errorf("dispute = %v, want %v", m.GetDispute(), want)
				}
				wantEq(t, "evidence_due_by", m.GetEvidenceDueBy().AsTime(), unix(1698710399))
			},
		},
	}
	for _, name := range testkit.StripeEventNames(t) {
		if _, ok := tests[name]; !ok {
			t.Errorf("fixture %s has no Derive expectation: add a row", name)
		}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw := testkit.StripeEvent(t, name)
			outs := derive(t, raw, testID, false)
			wantSubjects(t, outs, tt.subjects...)
			if tt.check != nil {
				tt.check(t, outs)
			}

			again := derive(t, raw, testID, false)
			if len(again) != len(outs) {
				t.Fatalf("second run: %d events, first %d", len(again), len(outs))
			}
			for i := range outs {
				if again[i].MsgID != outs[i].MsgID || !proto.Equal(again[i].Message, outs[i].Message) {
					t.Errorf("second run differs at %d: %s vs %s", i, again[i].MsgID, outs[i].MsgID)
				}
			}

			wantSubjects(t, derive(t, raw, testID, true), tt.stale...)
		})
	}
}

// prevItems renders previous_attributes.items holding the fixture's item
// with another price.
func prevItems(priceID string, unitAmount int64, interval string, quantity int64) string {
	return fmt.Sprintf(`{"object":"list","data":[{"id":"si_OnbkHx2hgk0eYp","object":"subscription_item","created":1697023498,
		"metadata":{},"price":{"id":%q,"object":"price","active":true,"billing_scheme":"per_unit","currency":"usd",
		"product":"prod_OnMHDH6VBmYlTr","recurring":{"interval":%q,"interval_count":1,"usage_type":"licensed"},
		"type":"recurring","unit_amount":%d,"unit_amount_decimal":"%d"},"quantity":%d,
		"subscription":"sub_1O00X8GgdF1VjufLsFtFRRh8","tax_rates":[]}],"has_more":false,
		"url":"/v1/subscription_items?subscription=sub_1O00X8GgdF1VjufLsFtFRRh8"}`, priceID, interval, unitAmount, unitAmount, quantity)
}

// item0 returns data.object.items.data[0].
func item0(obj map[string]any) map[string]any {
	return obj["items"].(map[string]any)["data"].([]any)[0].(map[string]any)
}

func TestDeriveSubscriptionUpdated(t *testing.T) {
	t.Parallel()
	type edit = func(t *testing.T, ev, obj map[string]any)
	prev := func(js string) edit {
		return func(t *testing.T, ev, _ map[string]any) { setPrevious(t, ev, js) }
	}
	both := func(a, b edit) edit {
		return func(t *testing.T, ev, obj map[string]any) { a(t, ev, obj); b(t, ev, obj) }
	}
	set := func(kv ...any) edit {
		return func(_ *testing.T, _, obj map[string]any) {
			for i := 0; i < len(kv); i += 2 {
				obj[kv[i].(string)] = kv[i+1]
			}
		}
	}
	items := func(id string, amount int64, interval string, qty int64) edit {
		return prev(`{"items":` + prevItems(id, amount, interval, qty) + `}`)
	}
	upgradedFrom := func(want *billingv1.Plan) func(t *testing.T, outs []Outgoing) {
		return func(t *testing.T, outs []Outgoing) {
			m := msg[*billingv1.SubscriptionUpgraded](t, outs, len(outs)-1)
			wantPlan(t, "previous_plan", m.GetPreviousPlan(), want)
		}
	}
	downgradedFrom := func(want *billingv1.Plan) func(t *testing.T, outs []Outgoing) {
		return func(t *testing.T, outs []Outgoing) {
			m := msg[*billingv1.SubscriptionDowngraded](t, outs, len(outs)-1)
			wantPlan(t, "previous_plan", m.GetPreviousPlan(), want)
		}
	}
	plan := func(price string, amount, mrr, qty int64, iv billingv1.Interval) *billingv1.Plan {
		return &billingv1.Plan{PriceId: price, ProductId: "prod_OnMHDH6VBmYlTr", Quantity: qty, AmountPerInterval: amount,
			Currency: "usd", Interval: iv, IntervalCount: 1, Mrr: mrr}
	}
	month, year := billingv1.Interval_INTERVAL_MONTH, billingv1.Interval_INTERVAL_YEAR
	reactivatedFrom := func(want billingv1.SubscriptionStatus) func(t *testing.T, outs []Outgoing) {
		return func(t *testing.T, outs []Outgoing) {
			m := msg[*billingv1.SubscriptionReactivated](t, outs, 0)
			wantEq(t, "previous_status", m.GetPreviousStatus(), want)
			wantEq(t, "status", m.GetSubscription().GetStatus(), billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE)
		}
	}

	tests := []struct {
		name  string
		edit  edit
		want  []string
		check func(t *testing.T, outs []Outgoing)
	}{
		{name: "metadata only", edit: nil},
		{
			name: "upgrade: price 10 -> 20 usd a month", edit: items("price_old", 1000, "month", 1),
			want:  []string{subjects.BillingSubscriptionUpgraded},
			check: upgradedFrom(plan("price_old", 1000, 1000, 1, month)),
		},
		{
			name: "downgrade: price 50 -> 20 usd a month", edit: items("price_old", 5000, "month", 1),
			want:  []string{subjects.BillingSubscriptionDowngraded},
			check: downgradedFrom(plan("price_old", 5000, 5000, 1, month)),
		},
		{
			name: "upgrade: seats 1 -> 5", edit: both(items("price_1NzlYfGgdF1VjufLh8T9h0N6", 2000, "month", 1),
				func(_ *testing.T, _, obj map[string]any) { item0(obj)["quantity"] = 5 }),
			want: []string{subjects.BillingSubscriptionUpgraded},
			check: func(t *testing.T, outs []Outgoing) {
				upgradedFrom(fixturePlan())(t, outs)
				now := msg[*billingv1.SubscriptionUpgraded](t, outs, 0).GetSubscription().GetPlan()
				wantEq(t, "mrr", now.GetMrr(), 10000)
				wantEq(t, "quantity", now.GetQuantity(), 5)
			},
		},
		{
			name: "downgrade: seats 3 -> 1 (legacy quantity field)", edit: prev(`{"quantity": 3}`),
			want:  []string{subjects.BillingSubscriptionDowngraded},
			check: downgradedFrom(plan("price_1NzlYfGgdF1VjufLh8T9h0N6", 6000, 6000, 3, month)),
		},
		{
			name: "upgrade from a legacy plan object",
			edit: prev(`{"plan":{"id":"plan_old","object":"plan","amount":1500,"amount_decimal":"1500","billing_scheme":"per_unit",
				"currency":"usd","interval":"month","interval_count":1,"product":"prod_old","usage_type":"licensed"}}`),
			want: []string{subjects.BillingSubscriptionUpgraded},
			check: upgradedFrom(&billingv1.Plan{PriceId: "plan_old", ProductId: "prod_old", Quantity: 1, AmountPerInterval: 1500,
				Currency: "usd", Interval: month, IntervalCount: 1, Mrr: 1500}),
		},
		{
			name: "upgrade: 120 usd a year (MRR 10) -> 20 a month", edit: items("price_year", 12000, "year", 1),
			want:  []string{subjects.BillingSubscriptionUpgraded},
			check: upgradedFrom(plan("price_year", 12000, 1000, 1, year)),
		},
		{name: "same MRR: 240 usd a year -> 20 a month: neither", edit: items("price_year", 24000, "year", 1)},
		{name: "items listed but the plan is unchanged", edit: items("price_1NzlYfGgdF1VjufLh8T9h0N6", 2000, "month", 1)},
		{
			name: "tiered price (amount not in the event): neither",
			edit: both(items("price_old", 1000, "month", 1), func(_ *testing.T, _, obj map[string]any) {
				p := item0(obj)["price"].(map[string]any)
				p["billing_scheme"], p["tiers_mode"], p["unit_amount"], p["unit_amount_decimal"] = "tiered", "graduated", nil, nil
			}),
		},
		{
			name: "cancel at period end",
			edit: both(set("cancel_at_period_end", true, "cancel_at", 1700841660, "canceled_at", 1698249720,
				"cancellation_details", map[string]any{"comment": nil, "feedback": nil, "reason": "cancellation_requested"}),
				prev(`{"cancel_at_period_end": false, "cancel_at": null, "canceled_at": null,
					"cancellation_details": {"reason": null}}`)),
			want: []string{subjects.BillingSubscriptionCanceled},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.SubscriptionCanceled](t, outs, 0)
				wantEq(t, "at_period_end", m.GetAtPeriodEnd(), true)
				wantEq(t, "cancel_at", m.GetCancelAt().AsTime(), unix(1700841660))
				wantEq(t, "reason", m.GetCancellationReason(), "cancellation_requested")
				wantEq(t, "subscription.cancel_at_period_end", m.GetSubscription().GetCancelAtPeriodEnd(), true)
				wantEq(t, "status", m.GetSubscription().GetStatus(), billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE)
			},
		},
		{
			name: "cancel at a date", edit: both(set("cancel_at", 1699000000), prev(`{"cancel_at": null}`)),
			want: []string{subjects.BillingSubscriptionCanceled},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.SubscriptionCanceled](t, outs, 0)
				wantEq(t, "at_period_end", m.GetAtPeriodEnd(), true)
				wantEq(t, "cancel_at", m.GetCancelAt().AsTime(), unix(1699000000))
			},
		},
		{
			name: "scheduled cancellation withdrawn",
			edit: prev(`{"cancel_at_period_end": true, "cancel_at": 1700841660, "canceled_at": 1698249700}`),
			want: []string{subjects.BillingSubscriptionReactivated}, check: reactivatedFrom(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE),
		},
		{
			name: "past_due -> active", edit: prev(`{"status": "past_due"}`),
			want: []string{subjects.BillingSubscriptionReactivated}, check: reactivatedFrom(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAST_DUE),
		},
		{
			name: "unpaid -> active", edit: prev(`{"status": "unpaid"}`),
			want: []string{subjects.BillingSubscriptionReactivated}, check: reactivatedFrom(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_UNPAID),
		},
		{
			name: "paused -> active", edit: prev(`{"status": "paused", "pause_collection": null}`),
			want: []string{subjects.BillingSubscriptionReactivated}, check: reactivatedFrom(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED),
		},
		{
			name: "active -> past_due", edit: both(set("status", "past_due", "latest_invoice", fxInvoice),
				prev(`{"status": "active", "latest_invoice": "in_older"}`)),
			want: []string{subjects.BillingSubscriptionPastDue},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.SubscriptionPastDue](t, outs, 0)
				wantEq(t, "latest_invoice_id", m.GetLatestInvoiceId(), fxInvoice)
				wantEq(t, "status", m.GetSubscription().GetStatus(), billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAST_DUE)
			},
		},
		{
			name: "trialing -> past_due", edit: both(set("status", "past_due"), prev(`{"status": "trialing"}`)),
			want: []string{subjects.BillingSubscriptionPastDue},
		},
		{
			name: "incomplete -> active starts the subscription", edit: prev(`{"status": "incomplete"}`),
			want: []string{subjects.BillingSubscriptionStarted},
		},
		{name: "trialing -> active (trial converted): nothing", edit: prev(`{"status": "trialing", "trial_end": 1698249600}`)},
		{name: "active -> unpaid: nothing", edit: both(set("status", "unpaid"), prev(`{"status": "active"}`))},
		{
			name: "past_due -> active with an upgrade: two events",
			edit: both(items("price_old", 1000, "month", 1), prev(`{"status": "past_due", "items": `+prevItems("price_old", 1000, "month", 1)+`}`)),
			want: []string{subjects.BillingSubscriptionReactivated, subjects.BillingSubscriptionUpgraded},
		},
		{
			name: "past_due -> active and cancellation withdrawn: one reactivation",
			edit: prev(`{"status": "past_due", "cancel_at_period_end": true, "cancel_at": 1700841660}`),
			want: []string{subjects.BillingSubscriptionReactivated}, check: reactivatedFrom(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAST_DUE),
		},
		{
			name: "cancellation scheduled with a downgrade",
			edit: both(set("cancel_at_period_end", true, "cancel_at", 1700841660),
				prev(`{"cancel_at_period_end": false, "cancel_at": null, "items": `+prevItems("price_old", 5000, "month", 1)+`}`)),
			want: []string{subjects.BillingSubscriptionCanceled, subjects.BillingSubscriptionDowngraded},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := fixture(t, "customer.subscription.updated", func(ev, obj map[string]any) {
				if tt.edit != nil {
					tt.edit(t, ev, obj)
				}
			})
			outs := derive(t, raw, testID, false)
			wantSubjects(t, outs, tt.want...)
			if tt.check != nil {
				tt.check(t, outs)
			}
			again := derive(t, raw, testID, false)
			for i := range again {
				if again[i].MsgID != outs[i].MsgID {
					t.Errorf("MsgID %d: %s then %s", i, outs[i].MsgID, again[i].MsgID)
				}
			}
			wantSubjects(t, derive(t, raw, testID, true)) // stale: all state-changing
		})
	}
}

func TestDeriveSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fixture string
		edit    func(ev, obj map[string]any)
		stale   bool
		want    []string
		check   func(t *testing.T, outs []Outgoing)
	}{
		{
			name: "created trialing", fixture: "customer.subscription.created",
			edit: func(_, o map[string]any) {
				o["status"], o["trial_start"], o["trial_end"] = "trialing", 1698249660, 1699459260
			},
			want: []string{subjects.BillingSubscriptionStarted},
			check: func(t *testing.T, outs []Outgoing) {
				s := msg[*billingv1.SubscriptionStarted](t, outs, 0).GetSubscription()
				wantEq(t, "status", s.GetStatus(), billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_TRIALING)
				wantEq(t, "trial_end", s.GetTrialEnd().AsTime(), unix(1699459260))
				wantEq(t, "mrr", s.GetPlan().GetMrr(), 2000) // the plan's value whatever the status
			},
		},
		{
			name: "created incomplete: not started yet", fixture: "customer.subscription.created",
			edit: func(_, o map[string]any) { o["status"] = "incomplete" },
		},
		{
			name: "trial will end", fixture: "customer.subscription.created",
			edit: func(ev, o map[string]any) {
				ev["type"] = "customer.subscription.trial_will_end"
				o["status"], o["trial_end"] = "trialing", 1699459260
			},
			want: []string{subjects.BillingSubscriptionTrialEnding},
			check: func(t *testing.T, outs []Outgoing) {
				s := msg[*billingv1.SubscriptionTrialEnding](t, outs, 0).GetSubscription()
				wantEq(t, "trial_end", s.GetTrialEnd().AsTime(), unix(1699459260))
			},
		},
		{
			name: "trial will end, stale: still a notice", fixture: "customer.subscription.created", stale: true,
			edit: func(ev, o map[string]any) { ev["type"] = "customer.subscription.trial_will_end" },
			want: []string{subjects.BillingSubscriptionTrialEnding},
		},
		{
			name: "deleted without ended_at uses canceled_at", fixture: "customer.subscription.deleted",
			edit: func(_, o map[string]any) {
				o["ended_at"], o["canceled_at"] = nil, 1698256700
				o["cancellation_details"].(map[string]any)["reason"] = "payment_failed"
			},
			want: []string{subjects.BillingSubscriptionCanceled},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.SubscriptionCanceled](t, outs, 0)
				wantEq(t, "cancel_at", m.GetCancelAt().AsTime(), unix(1698256700))
				wantEq(t, "reason", m.GetCancellationReason(), "payment_failed")
			},
		},
		{
			name: "customer.subscription.paused is not mapped", fixture: "customer.subscription.updated",
			edit: func(ev, o map[string]any) { ev["type"] = "customer.subscription.paused" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outs := derive(t, fixture(t, tt.fixture, tt.edit), testID, tt.stale)
			wantSubjects(t, outs, tt.want...)
			if tt.check != nil {
				tt.check(t, outs)
			}
		})
	}
}

func TestDerivePayments(t *testing.T) {
	t.Parallel()
	expandedCharge := `{"id":"ch_3O5E8yGgdF1VjufLyUrixmc3","object":"charge","amount":1000,"currency":"usd",
		"billing_details":{"email":"jenny.rosen@example.com","name":"Jenny Rosen"},
		"failure_code":"card_declined","failure_message":"Your card has insufficient funds.",
		"metadata":{"evil":"metadata"},
		"outcome":{"network_status":"declined_by_network","reason":"insufficient_funds","risk_level":"normal",
			"seller_message":"The bank returned the decline code insufficient_funds.","type":"issuer_declined"},
		"paid":false,"payment_method":"card_1NzlYeGgdF1VjufL3lxP5nPi",
		"payment_method_details":{"card":{"brand":"visa","exp_month":8,"exp_year":2024,
			"fingerprint":"S0gps5wtfE21rQ8P","last4":"4242","network":"visa"},"type":"card"},"status":"failed"}`
	tests := []struct {
		name    string
		fixture string
		edit    func(t *testing.T, ev, obj map[string]any)
		want    []string
		check   func(t *testing.T, outs []Outgoing)
	}{
		{
			name: "invoice.payment_succeeded: same payment, the same MsgID as invoice.paid", fixture: "invoice.paid",
			edit: func(_ *testing.T, ev, _ map[string]any) {
				ev["type"], ev["id"] = "invoice.payment_succeeded", "evt_1O5cugGgdF1VjufLpaymentSc"
			},
			want: []string{subjects.BillingPaymentSucceeded},
			check: func(t *testing.T, outs []Outgoing) {
				wantEq(t, "MsgID", outs[0].MsgID, "billing.payment.succeeded:"+fxInvoice)
				wantEq(t, "invoice_id", msg[*billingv1.PaymentSucceeded](t, outs, 0).GetInvoiceId(), fxInvoice)
			},
		},
		{
			name: "subscription invoice", fixture: "invoice.paid",
			edit: func(_ *testing.T, _, o map[string]any) {
				o["subscription"], o["billing_reason"], o["attempt_count"] = fxSubscription, "subscription_cycle", 1
			},
			want: []string{subjects.BillingPaymentSucceeded},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.PaymentSucceeded](t, outs, 0)
				wantEq(t, "subscription_id", m.GetSubscriptionId(), fxSubscription)
				wantEq(t, "billing_reason", m.GetBillingReason(), "subscription_cycle")
				wantEq(t, "attempt_count", m.GetAttemptCount(), 1)
			},
		},
		{
			name: "final failure: Stripe will not retry", fixture: "invoice.payment_failed",
			edit: func(_ *testing.T, _, o map[string]any) {
				o["next_payment_attempt"], o["attempt_count"], o["subscription"] = nil, 4, fxSubscription
			},
			want: []string{subjects.BillingPaymentFailed},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.PaymentFailed](t, outs, 0)
				wantEq(t, "final", m.GetFinal(), true)
				wantEq(t, "attempt_count", m.GetAttemptCount(), 4)
				wantEq(t, "subscription_id", m.GetSubscriptionId(), fxSubscription)
				if m.GetNextPaymentAttempt() != nil {
					t.Errorf("next_payment_attempt = %v, want unset", m.GetNextPaymentAttempt())
				}
			},
		},
		{
			name: "failure with an expanded charge: codes, never card data", fixture: "invoice.payment_failed",
			edit: func(t *testing.T, _, o map[string]any) { o["charge"] = jsonValue(t, expandedCharge) },
			want: []string{subjects.BillingPaymentFailed},
			check: func(t *testing.T, outs []Outgoing) {
				m := msg[*billingv1.PaymentFailed](t, outs, 0)
				wantEq(t, "charge_id", m.GetChargeId(), "ch_3O5E8yGgdF1VjufLyUrixmc3")
				wantEq(t, "failure_code", m.GetFailureCode(), "card_declined")
				wantEq(t, "decline_code", m.GetDeclineCode(), "insufficient_funds")
				wantEq(t, "failure_message", m.GetFailureMessage(), "Your card has insufficient funds.")
				wantEq(t, "final", m.GetFinal(), false)
			},
		},
		{
			name: "blocked by Radar: no decline code", fixture: "invoice.payment_failed",
			edit: func(t *testing.T, _, o map[string]any) {
				ch := jsonValue(t, expandedCharge).(map[string]any)
				ch["outcome"] = map[string]any{"type": "blocked", "reason": "highest_risk_level"}
				o["charge"] = ch
			},
			want: []string{subjects.BillingPaymentFailed},
			check: func(t *testing.T, outs []Outgoing) {
				wantEq(t, "decline_code", msg[*billingv1.PaymentFailed](t, outs, 0).GetDeclineCode(), "")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := fixture(t, tt.fixture, func(ev, obj map[string]any) { tt.edit(t, ev, obj) })
			for _, stale := range []bool{false, true} { // facts: stale changes nothing
				outs := derive(t, raw, testID, stale)
				wantSubjects(t, outs, tt.want...)
				tt.check(t, outs)
			}
		})
	}
}

func TestDeriveRefunds(t *testing.T) {
	t.Parallel()
	refund := func(id string, amount int64, created int64) map[string]any {
		return map[string]any{"id": id, "object": "refund", "amount": amount, "charge": fxCharge, "created": created,
			"currency": "usd", "payment_intent": "pi_R", "reason": "requested_by_customer", "status": "succeeded",
			"metadata": map[string]any{"evil": "x"}}
	}
	refundList := func(rs ...map[string]any) map[string]any {
		data := make([]any, len(rs))
		for i, r := range rs {
			data[i] = r
		}
		return map[string]any{"object": "list", "data": data, "has_more": false, "url": "/v1/charges/" + fxCharge + "/refunds"}
	}
	tests := []struct {
		name    string
		edit    func(ev, obj map[string]any)
		amounts []int64
		ids     []string
		full    bool
	}{
		{
			name: "a second partial refund: only the new one",
			edit: func(ev, o map[string]any) {
				o["refunds"] = refundList(refund("re_2", 60, 1698250500), refund("re_1", 40, 1698250400))
				ev["data"].(map[string]any)["previous_attributes"] = map[string]any{
					"amount_refunded": 40, "refunded": false, "refunds": refundList(refund("re_1", 40, 1698250400)),
				}
			},
			amounts: []int64{60}, ids: []string{"re_2"}, full: true,
		},
		{
			name: "refunds listed, no previous list: one event each",
			edit: func(_, o map[string]any) {
				o["refunds"] = refundList(refund("re_2", 60, 1698250500), refund("re_1", 40, 1698250400))
			},
			amounts: []int64{60, 40}, ids: []string{"re_2", "re_1"}, full: true,
		},
		{
			name:    "partial refund, refunds not expanded",
			edit:    func(_, o map[string]any) { o["amount_refunded"], o["refunded"] = 30, false },
			amounts: []int64{30}, ids: []string{""}, full: false,
		},
		{
			name: "second partial refund, refunds not expanded: the difference",
			edit: func(ev, o map[string]any) {
				ev["data"].(map[string]any)["previous_attributes"] = map[string]any{"amount_refunded": 40, "refunded": false}
			},
			amounts: []int64{60}, ids: []string{""}, full: true,
		},
		{
			name: "nothing new refunded",
			edit: func(ev, o map[string]any) {
				ev["data"].(map[string]any)["previous_attributes"] = map[string]any{"amount_refunded": 100}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			outs := derive(t, fixture(t, "charge.refunded", tt.edit), testID, false)
			if len(outs) != len(tt.amounts) {
				t.Fatalf("%d events (%v), want %d", len(outs), subjectList(outs), len(tt.amounts))
			}
			for i := range outs {
				m := msg[*billingv1.RefundIssued](t, outs, i)
				wantEq(t, "amount", m.GetAmount(), tt.amounts[i])
				wantEq(t, "refund_id", m.GetRefundId(), tt.ids[i])
				wantEq(t, "charge_id", m.GetChargeId(), fxCharge)
				wantEq(t, "currency", m.GetCurrency(), "usd")
				wantEq(t, "charge_fully_refunded", m.GetChargeFullyRefunded(), tt.full)
				wantMsgID := "billing.refund.issued:" + fxCharge + ":"
				if tt.ids[i] != "" {
					wantMsgID = "billing.refund.issued:" + tt.ids[i]
					wantEq(t, "reason", m.GetReason(), "requested_by_customer")
					wantEq(t, "status", m.GetStatus(), "succeeded")
					wantEq(t, "payment_intent_id", m.GetPaymentIntentId(), "pi_R")
				}
				if !strings.HasPrefix(outs[i].MsgID, wantMsgID) {
					t.Errorf("MsgID = %s, want it to start with %s", outs[i].MsgID, wantMsgID)
				}
			}
		})
	}
}

func TestDeriveDisputeClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status string
		want   billingv1.DisputeOutcome
	}{
		{"won", billingv1.DisputeOutcome_DISPUTE_OUTCOME_WON},
		{"lost", billingv1.DisputeOutcome_DISPUTE_OUTCOME_LOST},
		{"warning_closed", billingv1.DisputeOutcome_DISPUTE_OUTCOME_WARNING_CLOSED},
		{"under_review", billingv1.DisputeOutcome_DISPUTE_OUTCOME_UNSPECIFIED},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			t.Parallel()
			raw := fixture(t, "charge.dispute.created", func(ev, o map[string]any) {
				ev["type"], ev["id"], ev["created"] = "charge.dispute.closed", "evt_1O9closedGgdF1VjufL", 1699000000
				o["status"] = tt.status
			})
			outs := derive(t, raw, testID, true) // a fact: stale or not
			wantSubjects(t, outs, subjects.BillingDisputeClosed)
			m := msg[*billingv1.DisputeClosed](t, outs, 0)
			wantEq(t, "outcome", m.GetOutcome(), tt.want)
			wantEq(t, "status", m.GetDispute().GetStatus(), tt.status)
			wantEq(t, "dispute_id", m.GetDispute().GetDisputeId(), fxDispute)
			wantEq(t, "MsgID", outs[0].MsgID, "billing.dispute.closed:"+fxDispute)
		})
	}
}

func TestDeriveUnmappedAndInvalid(t *testing.T) {
	t.Parallel()
	retype := func(name, typ string) []byte {
		return fixture(t, name, func(ev, _ map[string]any) { ev["type"] = typ })
	}
	for _, raw := range [][]byte{
		retype("customer.created", "customer.deleted"),
		retype("charge.refunded", "charge.succeeded"),
		retype("charge.dispute.created", "charge.dispute.funds_withdrawn"),
		retype("invoice.paid", "invoice.upcoming"),
		retype("customer.subscription.updated", "customer.subscription.resumed"),
	} {
		f, ev, err := ExtractFacts(raw)
		if err != nil {
			t.Fatal(err)
		}
		if outs, err := Derive(ev, f, testID, false); outs != nil || err != nil {
			t.Errorf("%s: Derive = %v, %v; want nil, nil", f.EventType, subjectList(outs), err)
		}
	}

	for _, raw := range [][]byte{
		retype("customer.created", "invoice.paid"),
		retype("invoice.paid", "customer.subscription.updated"),
		retype("charge.refunded", "charge.dispute.created"),
	} {
		f, ev, err := ExtractFacts(raw)
		if err != nil {
			t.Fatal(err)
		}
		if outs, err := Derive(ev, f, testID, false); err == nil {
			t.Errorf("%s on a %s: Derive = %v, nil; want an error", f.EventType, f.ObjectKind, subjectList(outs))
		}
	}
	if _, err := Derive(nil, Facts{}, testID, false); err == nil {
		t.Error("Derive(nil) succeeded")
	}
}

func TestDeriveCheckoutAndIdentityFallbacks(t *testing.T) {
	t.Parallel()
	// A guest checkout (the fixture: no Stripe customer, and identity
	// resolved none): the email typed in it is nobody's identity, so it
	// upserts no customer.
	bare := Identity{CanonicalID: "cc_0002"}
	wantSubjects(t, derive(t, testkit.StripeEvent(t, "checkout.session.completed"), bare, false))

	// A session identity resolved to a Stripe customer (through its
	// subscription): the email is the customer's, the typed one only
	// unverified.
	typed := fixture(t, "checkout.session.completed", func(_, o map[string]any) {
		o["subscription"] = fxSubscription
		o["customer_details"].(map[string]any)["email"] = "Typed@Example.com"
	})
	outs := derive(t, typed, testID, false)
	wantSubjects(t, outs, subjects.BillingCustomerUpserted)
	m := msg[*billingv1.CustomerUpserted](t, outs, 0)
	wantEq(t, "email", m.GetEmail(), testID.Email)
	wantEq(t, "meta.email", m.GetMeta().GetEmail(), testID.Email)
	wantEq(t, "meta.unverified_email", m.GetMeta().GetUnverifiedEmail(), "typed@example.com")

	// The session names its Stripe customer, whose email identity does not
	// know yet: no email at all rather than the typed one.
	withCustomer := fixture(t, "checkout.session.completed", func(_, o map[string]any) { o["customer"] = fxCustomer })
	outs = derive(t, withCustomer, bare, false)
	wantSubjects(t, outs, subjects.BillingCustomerUpserted)
	m = msg[*billingv1.CustomerUpserted](t, outs, 0)
	wantEq(t, "email", m.GetEmail(), "")
	wantEq(t, "meta.email", m.GetMeta().GetEmail(), "")
	wantEq(t, "meta.unverified_email", m.GetMeta().GetUnverifiedEmail(), "example@example.com")
	wantEq(t, "stripe_customer_ids", strings.Join(m.GetStripeCustomerIds(), ","), fxCustomer)

	// The service has not resolved an email or name yet: the customer
	// object's own facts fill the envelope.
	outs = derive(t, testkit.StripeEvent(t, "customer.updated.email-set"), bare, false)
	m = msg[*billingv1.CustomerUpserted](t, outs, 0)
	wantEq(t, "email", m.GetEmail(), "jenny.rosen@example.com")
	wantEq(t, "name", m.GetName(), "Jenny Rosen")
	wantEq(t, "stripe_customer_ids", strings.Join(m.GetStripeCustomerIds(), ","), fxCustomer)
}

// TestDeriveNormalisesText: text Derive reads straight from the Stripe
// object — a product's and a price's name, a decline message, an id
// stripe-go took from the JSON unescaped — leaves identity as text every
// subscriber can hold: valid UTF-8 (protobuf refuses to marshal anything
// else, so the event could not be published), no NUL (PostgreSQL refuses
// it), no control or bidi override, names capped at 256 characters and
// other text at 1,024.
func TestDeriveNormalisesText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 20000)
	t.Run("plan names", func(t *testing.T) {
		t.Parallel()
		raw := fixture(t, "customer.subscription.created", func(_, o map[string]any) {
			price := o["items"].(map[string]any)["data"].([]any)[0].(map[string]any)["price"].(map[string]any)
			price["product"] = map[string]any{"id": "prod_OnMHDH6VBmYlTr", "object": "product", "name": "Pro\u0000 \u202eplan\n"}
			price["nickname"] = long
		})
		outs := derive(t, raw, testID, false)
		wantSubjects(t, outs, subjects.BillingSubscriptionStarted)
		plan := msg[*billingv1.SubscriptionStarted](t, outs, 0).GetSubscription().GetPlan()
		wantEq(t, "product_name", plan.GetProductName(), "Pro plan")
		wantEq(t, "price_nickname", plan.GetPriceNickname(), strings.Repeat("x", 255)+"…")
	})
	t.Run("decline message and an id with invalid UTF-8", func(t *testing.T) {
		t.Parallel()
		raw := fixture(t, "invoice.payment_failed", func(_, o map[string]any) {
			o["charge"] = map[string]any{"id": "ch_3O5E8yGgdF1VjufLyUrixmc3", "object": "charge",
				"failure_code": "card_declined", "failure_message": "Declined\u0000\u0007 " + long}
			o["subscription"] = "sub_MARK"
		})
		// stripe-go takes an unexpanded id as the raw bytes between the
		// quotes: bytes no JSON decoder would let through.
		raw = bytes.Replace(raw, []byte(`"sub_MARK"`), []byte("\"sub_\xff\xfe\""), 1)
		outs := derive(t, raw, testID, false) // checkEnvelopes marshals each
		wantSubjects(t, outs, subjects.BillingPaymentFailed)
		m := msg[*billingv1.PaymentFailed](t, outs, 0)
		wantEq(t, "failure_message", m.GetFailureMessage(), "Declined "+strings.Repeat("x", 1014)+"…")
		wantEq(t, "subscription_id", m.GetSubscriptionId(), "sub_\uFFFD") // a run of invalid bytes is one U+FFFD
	})
}

func TestDeriveMRR(t *testing.T) {
	t.Parallel()
	price := func(unit int64, interval string, count int64) *stripe.Price {
		return &stripe.Price{ID: "price_x", Currency: "usd", BillingScheme: stripe.PriceBillingSchemePerUnit,
			UnitAmount: unit, UnitAmountDecimal: float64(unit), Product: &stripe.Product{ID: "prod_x"},
			Recurring: &stripe.PriceRecurring{Interval: stripe.PriceRecurringInterval(interval), IntervalCount: count}}
	}
	item := func(p *stripe.Price, qty int64) *stripe.SubscriptionItem {
		return &stripe.SubscriptionItem{Price: p, Quantity: qty}
	}
	tests := []struct {
		name         string
		items        []*stripe.SubscriptionItem
		amount, mrr  int64
		known        bool
		wantInterval billingv1.Interval
	}{
		{"monthly", []*stripe.SubscriptionItem{item(price(2000, "month", 1), 1)}, 2000, 2000, true, billingv1.Interval_INTERVAL_MONTH},
		{"monthly x 3 seats", []*stripe.SubscriptionItem{item(price(2000, "month", 1), 3)}, 6000, 6000, true, billingv1.Interval_INTERVAL_MONTH},
		{"quarterly", []*stripe.SubscriptionItem{item(price(1000, "month", 3), 1)}, 1000, 333, true, billingv1.Interval_INTERVAL_MONTH},
		{"yearly 100.00 -> 8.333", []*stripe.SubscriptionItem{item(price(10000, "year", 1), 1)}, 10000, 833, true, billingv1.Interval_INTERVAL_YEAR},
		{"yearly 100.06 -> 8.338", []*stripe.SubscriptionItem{item(price(10006, "year", 1), 1)}, 10006, 834, true, billingv1.Interval_INTERVAL_YEAR},
		{"half rounds up: 18 a year", []*stripe.SubscriptionItem{item(price(18, "year", 1), 1)}, 18, 2, true, billingv1.Interval_INTERVAL_YEAR},
		{"just under half rounds down: 17 a year", []*stripe.SubscriptionItem{item(price(17, "year", 1), 1)}, 17, 1, true, billingv1.Interval_INTERVAL_YEAR},
		{"weekly 10.00 -> 43.33", []*stripe.SubscriptionItem{item(price(1000, "week", 1), 1)}, 1000, 4333, true, billingv1.Interval_INTERVAL_WEEK},
		{"fortnightly", []*stripe.SubscriptionItem{item(price(1200, "week", 2), 1)}, 1200, 2600, true, billingv1.Interval_INTERVAL_WEEK},
		{"daily 1.00 -> 30.42", []*stripe.SubscriptionItem{item(price(100, "day", 1), 1)}, 100, 3042, true, billingv1.Interval_INTERVAL_DAY},
		{"two items summed", []*stripe.SubscriptionItem{item(price(2000, "month", 1), 1), item(price(500, "month", 1), 4)},
			4000, 4000, true, billingv1.Interval_INTERVAL_MONTH},
		{"sub-cent unit amount", []*stripe.SubscriptionItem{item(func() *stripe.Price {
			p := price(0, "month", 1)
			p.UnitAmountDecimal = 0.5
			return p
		}(), 3)}, 2, 2, true, billingv1.Interval_INTERVAL_MONTH},
		{"package pricing rounds up", []*stripe.SubscriptionItem{item(func() *stripe.Price {
			p := price(500, "month", 1)
			p.TransformQuantity = &stripe.PriceTransformQuantity{DivideBy: 10, Round: stripe.PriceTransformQuantityRoundUp}
			return p
		}(), 11)}, 1000, 1000, true, billingv1.Interval_INTERVAL_MONTH},
		{"package pricing rounds down", []*stripe.SubscriptionItem{item(func() *stripe.Price {
			p := price(500, "month", 1)
			p.TransformQuantity = &stripe.PriceTransformQuantity{DivideBy: 10, Round: stripe.PriceTransformQuantityRoundDown}
			return p
		}(), 19)}, 500, 500, true, billingv1.Interval_INTERVAL_MONTH},
		{"legacy plan", []*stripe.SubscriptionItem{{Plan: &stripe.Plan{ID: "plan_x", Amount: 12000, Currency: "usd",
			Interval: stripe.PlanIntervalYear, IntervalCount: 1}, Quantity: 2}}, 24000, 2000, true, billingv1.Interval_INTERVAL_YEAR},
		{"tiered: unknown", []*stripe.SubscriptionItem{item(func() *stripe.Price {
			p := price(0, "month", 1)
			p.BillingScheme = stripe.PriceBillingSchemeTiered
			return p
		}(), 5)}, 0, 0, false, billingv1.Interval_INTERVAL_MONTH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ls := planLines(&stripe.SubscriptionItemList{Data: tt.items})
			p := planOf(ls)
			wantEq(t, "amount_per_interval", p.GetAmountPerInterval(), tt.amount)
			wantEq(t, "mrr", p.GetMrr(), tt.mrr)
			wantEq(t, "known", linesKnown(ls), tt.known)
			wantEq(t, "interval", p.GetInterval(), tt.wantInterval)
			wantEq(t, "quantity", p.GetQuantity(), tt.items[0].Quantity)
		})
	}
	if planOf(planLines(nil)) != nil {
		t.Error("plan of no items is not nil")
	}
}

var factSubjects = map[string]bool{
	subjects.BillingPaymentSucceeded: true, subjects.BillingPaymentFailed: true, subjects.BillingRefundIssued: true,
	subjects.BillingDisputeOpened: true, subjects.BillingDisputeClosed: true,
}

// factKey is the object a fact message is keyed by.
func factKey(m proto.Message) string {
	switch v := m.(type) {
	case *billingv1.PaymentSucceeded:
		return v.GetInvoiceId()
	case *billingv1.PaymentFailed:
		return v.GetInvoiceId() + ":" + strconv.Itoa(int(v.GetAttemptCount()))
	case *billingv1.RefundIssued:
		if v.GetRefundId() != "" {
			return v.GetRefundId()
		}
		return v.GetChargeId() + ":"
	case *billingv1.DisputeOpened:
		return v.GetDispute().GetDisputeId()
	case *billingv1.DisputeClosed:
		return v.GetDispute().GetDisputeId()
	}
	return ""
}

// A plan is named by what Stripe sends: the product's name when the product
// is expanded, and the price's (or legacy plan's) nickname, which webhooks
// carry; the console and the CRM showed the raw price id instead.
func TestDerivePlanNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		item               *stripe.SubscriptionItem
		wantName, wantNick string
	}{
		{"nickname of a price", &stripe.SubscriptionItem{Quantity: 1, Price: &stripe.Price{ID: "price_1", Nickname: "Pro monthly", Currency: "usd",
			Product: &stripe.Product{ID: "prod_1"}}}, "", "Pro monthly"},
		{"expanded product", &stripe.SubscriptionItem{Quantity: 1, Price: &stripe.Price{ID: "price_1", Nickname: "Pro monthly", Currency: "usd",
			Product: &stripe.Product{ID: "prod_1", Name: "Pro"}}}, "Pro", "Pro monthly"},
		{"legacy plan's nickname", &stripe.SubscriptionItem{Quantity: 1, Plan: &stripe.Plan{ID: "plan_1", Nickname: "Gold", Currency: "usd"}}, "", "Gold"},
	} {
		p := planOf(planLines(&stripe.SubscriptionItemList{Data: []*stripe.SubscriptionItem{tc.item}}))
		if p.GetProductName() != tc.wantName || p.GetPriceNickname() != tc.wantNick {
			t.Errorf("%s: product name %q, nickname %q; want %q, %q", tc.name, p.GetProductName(), p.GetPriceNickname(), tc.wantName, tc.wantNick)
		}
	}
}
