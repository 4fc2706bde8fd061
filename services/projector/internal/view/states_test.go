package view_test

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/internal/viewtest"
)

// story builds one customer's history, one message per call, a second
// apart.
type story struct {
	t   *testing.T
	at  time.Time
	n   int
	out []lifegen.Msg
}

func newStory(t *testing.T) *story {
	return &story{t: t, at: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (s *story) meta(subject string) *billingv1.EventMeta {
	s.n++
	s.at = s.at.Add(time.Second)
	evt := "evt_" + strings.Repeat("s", 3) + string(rune('a'+s.n))
	return &billingv1.EventMeta{EventId: subject + ":" + evt, CanonicalCustomerId: "cust_s", SourceEventIds: []string{evt},
		OccurredAt: timestamppb.New(s.at), StripeCustomerId: "cus_S", Email: "s@example.com"}
}

func (s *story) add(m proto.Message, id string) string {
	s.out = append(s.out, msg(s.t, m, id, "4bf92f3577b34da6a3ce929d0e0e4736"))
	return id
}

func (s *story) sub(status billingv1.SubscriptionStatus) *billingv1.Subscription {
	return &billingv1.Subscription{SubscriptionId: "sub_S", Status: status,
		Plan: &billingv1.Plan{PriceId: "price_pro", ProductName: "Pro", Quantity: 1, Currency: "usd", Mrr: 4900}}
}

func (s *story) started() string {
	m := &billingv1.SubscriptionStarted{Meta: s.meta(subjects.BillingSubscriptionStarted), Subscription: s.sub(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE)}
	return s.add(m, m.Meta.EventId)
}

func (s *story) paid() string {
	m := &billingv1.PaymentSucceeded{Meta: s.meta(subjects.BillingPaymentSucceeded), InvoiceId: "in_S" + string(rune('a'+s.n)), Amount: 4900, Currency: "usd", AttemptCount: 1}
	return s.add(m, m.Meta.EventId)
}

func (s *story) failed(next time.Time) string {
	m := &billingv1.PaymentFailed{Meta: s.meta(subjects.BillingPaymentFailed), InvoiceId: "in_S" + string(rune('a'+s.n)), Amount: 4900, Currency: "usd", AttemptCount: 1}
	if !next.IsZero() {
		m.NextPaymentAttempt = timestamppb.New(next)
	} else {
		m.Final = true
	}
	return s.add(m, m.Meta.EventId)
}

func (s *story) canceled() string {
	m := &billingv1.SubscriptionCanceled{Meta: s.meta(subjects.BillingSubscriptionCanceled), Subscription: s.sub(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_CANCELED)}
	return s.add(m, m.Meta.EventId)
}

func (s *story) synced(source string) {
	id := subjects.CRMContactSynced + ":" + source
	s.add(&crmv1.ContactSynced{EventId: id, CanonicalCustomerId: "cust_s", SourceEventId: source, OccurredAt: timestamppb.New(s.at.Add(time.Millisecond)),
		ContactId: "501", Attempt: 1, Provider: "hubspot"}, id)
}

func (s *story) ticket(source, rule string) {
	id := subjects.SupportTicketOpened + ":" + source + ":" + rule
	s.add(&supportv1.TicketOpened{EventId: id, CanonicalCustomerId: "cust_s", SourceEventId: source, OccurredAt: timestamppb.New(s.at.Add(2 * time.Millisecond)),
		Rule: rule, TicketId: "42", Priority: supportv1.Priority_PRIORITY_NORMAL, Provider: "zendesk"}, id)
}

// A canceled subscription always shows, above the facts it supersedes;
// what happens after the cancellation still ranks by urgency.
func TestCanceledSubscriptionShowsAboveWhatItSupersedes(t *testing.T) {
	retry := time.Date(2024, 3, 4, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		story func(s *story)
		want  []string
	}{
		{"paid, then canceled with a cancellation ticket (the issue's customer)", func(s *story) {
			s.synced(s.started())
			s.synced(s.paid())
			c := s.canceled()
			s.synced(c)
			s.ticket(c, "cancellation")
		}, []string{view.StateCanceled, view.StateTicketOpened, view.StatePaymentReceived}},
		{"a failed payment, then canceled: its retries are over", func(s *story) {
			s.synced(s.started())
			f := s.failed(retry)
			s.synced(f)
			s.ticket(f, "payment_failed")
			s.synced(s.canceled())
		}, []string{view.StateCanceled, view.StatePaymentFinal, view.StateTicketOpened}},
		{"canceled, then the final invoice fails: that needs a person first", func(s *story) {
			s.synced(s.started())
			s.synced(s.canceled())
			s.synced(s.failed(retry))
		}, []string{view.StatePaymentFailed + "2024-03-04", view.StateCanceled}},
		{"canceled while the CRM has not caught up: pending, never provisioning", func(s *story) {
			s.synced(s.started())
			s.canceled()
		}, []string{view.StateCanceled, view.StateCRMPending}},
		{"started, the CRM not caught up yet: provisioning", func(s *story) {
			s.started()
		}, []string{view.StateProvisioning}},
		{"restarted after a cancellation: no longer canceled", func(s *story) {
			s.synced(s.started())
			s.synced(s.canceled())
			m := &billingv1.SubscriptionStarted{Meta: s.meta(subjects.BillingSubscriptionStarted), Subscription: s.sub(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE)}
			m.Subscription.SubscriptionId = "sub_S2"
			s.synced(s.add(m, m.Meta.EventId))
			s.synced(s.paid())
		}, []string{view.StatePaymentReceived}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStory(t)
			tc.story(s)
			v := view.Fold("cust_s", viewtest.Entries(t, s.out))
			if !slices.Equal(v.States, tc.want) || v.State != tc.want[0] {
				t.Fatalf("states = %q (state %q), want %q", v.States, v.State, tc.want)
			}
		})
	}
}

// The ordering rules hold for every generated lifecycle, in any order of
// its messages: canceled shows exactly when no subscription is live, above
// payments it supersedes and never beside provisioning; a failed payment
// ranks above it only when it came after the cancellation; "customer
// created" only alone; no state twice.
func TestStateOrderOverShuffledLifecycles(t *testing.T) {
	checked := map[string]int{}
	for seed := range uint64(300) {
		all := viewtest.Entries(t, lifegen.Generate(seed, 3))
		byOwner := map[string][]view.Entry{}
		for _, e := range all {
			owner := strings.TrimSuffix(e.CustomerID, "_dup")
			byOwner[owner] = append(byOwner[owner], e)
		}
		rng := rand.New(rand.NewPCG(seed, 11))
		for owner, es := range byOwner {
			v := view.Fold(owner, shuffleDup(rng, es))
			fail := func(format string, args ...any) {
				t.Helper()
				doc, _ := json.Marshal(v)
				t.Fatalf("seed %d, %s: "+format+"\nview: %s", append([]any{seed, owner}, append(args, doc)...)...)
			}
			at := func(state string) int {
				return slices.IndexFunc(v.States, func(s string) bool { return view.StateKind(s) == view.StateKind(state) })
			}
			if len(v.States) == 0 || v.State != v.States[0] {
				fail("state %q, states %q", v.State, v.States)
			}
			seen := map[string]bool{}
			for _, s := range v.States {
				if seen[s] {
					fail("%q twice", s)
				}
				seen[s] = true
			}
			if i := at(view.StateNoActivity); i >= 0 && len(v.States) > 1 {
				fail("%q beside other states", view.StateNoActivity)
			}
			canceled := at(view.StateCanceled)
			if (canceled >= 0) != (v.Status == "canceled") {
				fail("canceled at %d with subscription status %q", canceled, v.Status)
			}
			if p := v.LastPayment; p != nil && p.Status == "succeeded" && at(view.StatePaymentReceived) < 0 {
				fail("last payment succeeded, no %q", view.StatePaymentReceived)
			}
			if canceled < 0 {
				continue
			}
			checked["canceled"]++
			canceledAt := v.Subscriptions[0].UpdatedAt
			if at(view.StateProvisioning) >= 0 {
				fail("provisioning for a canceled customer")
			}
			for _, below := range []string{view.StatePaymentReceived, view.StateTicketOpened, view.StateCRMPending} {
				if i := at(below); i >= 0 && i < canceled {
					fail("%q above %q", below, view.StateCanceled)
				}
			}
			for i, s := range v.States {
				if !strings.HasPrefix(s, "payment failed") {
					continue
				}
				checked["canceled with a failed payment"]++
				after := v.LastPayment.At.After(canceledAt)
				if after != (i < canceled) {
					fail("failed payment at %s, canceled at %s: %q at %d, canceled at %d", v.LastPayment.At, canceledAt, s, i, canceled)
				}
				if !after && s != view.StatePaymentFinal {
					fail("a failed payment before the cancellation still promises a retry: %q", s)
				}
			}
		}
	}
	// The generator must exercise the rules, or this test proves nothing.
	if checked["canceled"] < 20 || checked["canceled with a failed payment"] < 3 {
		t.Fatalf("too few cases: %v", checked)
	}
}

// Emails typed by whoever paid are kept as unverified contact details:
// listed apart, never the customer's email.
func TestUnverifiedEmailsAreShownApart(t *testing.T) {
	s := newStory(t)
	s.synced(s.started())
	m := &billingv1.PaymentSucceeded{Meta: s.meta(subjects.BillingPaymentSucceeded), InvoiceId: "in_u", Amount: 4900, Currency: "usd", AttemptCount: 1}
	m.Meta.UnverifiedEmail = "typed-on-a-card-form@example.net"
	s.add(m, m.Meta.EventId)
	v := view.Fold("cust_s", viewtest.Entries(t, s.out))
	if v.Email != "s@example.com" || !slices.Equal(v.UnverifiedEmails, []string{"typed-on-a-card-form@example.net"}) {
		t.Fatalf("email %q, unverified %q; want the profile email kept and the typed one listed apart", v.Email, v.UnverifiedEmails)
	}
}

// msg builds a published message with a fixed trace id.
func msg(t *testing.T, m proto.Message, id, trace string) lifegen.Msg {
	t.Helper()
	subj, err := subjects.Of(m)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h := nats.Header{}
	h.Set(wire.HeaderMsgID, id)
	h.Set("traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	return lifegen.Msg{Subject: subj, Data: data, Header: h}
}
