package projector_test

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	supportv1 "github.com/switchyard/switchyard/proto/gen/switchyard/support/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
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
		}, []string{projector.StateCanceled, projector.StateTicketOpened, projector.StatePaymentReceived}},
		{"a failed payment, then canceled: its retries are over", func(s *story) {
			s.synced(s.started())
			f := s.failed(retry)
			s.synced(f)
			s.ticket(f, "payment_failed")
			s.synced(s.canceled())
		}, []string{projector.StateCanceled, projector.StatePaymentFinal, projector.StateTicketOpened}},
		{"canceled, then the final invoice fails: that needs a person first", func(s *story) {
			s.synced(s.started())
			s.synced(s.canceled())
			s.synced(s.failed(retry))
		}, []string{projector.StatePaymentFailed + "2024-03-04", projector.StateCanceled}},
		{"canceled while the CRM has not caught up: pending, never provisioning", func(s *story) {
			s.synced(s.started())
			s.canceled()
		}, []string{projector.StateCanceled, projector.StateCRMPending}},
		{"started, the CRM not caught up yet: provisioning", func(s *story) {
			s.started()
		}, []string{projector.StateProvisioning}},
		{"restarted after a cancellation: no longer canceled", func(s *story) {
			s.synced(s.started())
			s.synced(s.canceled())
			m := &billingv1.SubscriptionStarted{Meta: s.meta(subjects.BillingSubscriptionStarted), Subscription: s.sub(billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE)}
			m.Subscription.SubscriptionId = "sub_S2"
			s.synced(s.add(m, m.Meta.EventId))
			s.synced(s.paid())
		}, []string{projector.StatePaymentReceived}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStory(t)
			tc.story(s)
			v := projector.Fold("cust_s", entries(t, s.out))
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
		all := entries(t, lifegen.Generate(seed, 3))
		byOwner := map[string][]projector.Entry{}
		for _, e := range all {
			owner := strings.TrimSuffix(e.CustomerID, "_dup")
			byOwner[owner] = append(byOwner[owner], e)
		}
		rng := rand.New(rand.NewPCG(seed, 11))
		for owner, es := range byOwner {
			v := projector.Fold(owner, shuffleDup(rng, es))
			fail := func(format string, args ...any) {
				t.Helper()
				doc, _ := json.Marshal(v)
				t.Fatalf("seed %d, %s: "+format+"\nview: %s", append([]any{seed, owner}, append(args, doc)...)...)
			}
			at := func(state string) int {
				return slices.IndexFunc(v.States, func(s string) bool { return projector.StateKind(s) == projector.StateKind(state) })
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
			if i := at(projector.StateNoActivity); i >= 0 && len(v.States) > 1 {
				fail("%q beside other states", projector.StateNoActivity)
			}
			canceled := at(projector.StateCanceled)
			if (canceled >= 0) != (v.Status == "canceled") {
				fail("canceled at %d with subscription status %q", canceled, v.Status)
			}
			if p := v.LastPayment; p != nil && p.Status == "succeeded" && at(projector.StatePaymentReceived) < 0 {
				fail("last payment succeeded, no %q", projector.StatePaymentReceived)
			}
			if canceled < 0 {
				continue
			}
			checked["canceled"]++
			canceledAt := v.Subscriptions[0].UpdatedAt
			if at(projector.StateProvisioning) >= 0 {
				fail("provisioning for a canceled customer")
			}
			for _, below := range []string{projector.StatePaymentReceived, projector.StateTicketOpened, projector.StateCRMPending} {
				if i := at(below); i >= 0 && i < canceled {
					fail("%q above %q", below, projector.StateCanceled)
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
				if !after && s != projector.StatePaymentFinal {
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

// States are evaluated when read: a retry whose day has passed reads as
// overdue in the customer's view and in the overview's counts, while one
// still ahead reads as scheduled.
func TestStatesAreEvaluatedWhenRead(t *testing.T) {
	h := start(t, nil)
	now := time.Now().UTC()
	ahead, past := now.Add(72*time.Hour), now.Add(-48*time.Hour)
	for _, c := range []struct {
		id   string
		next time.Time
	}{{"cust_ahead", ahead}, {"cust_past", past}} {
		meta := &billingv1.EventMeta{EventId: subjects.BillingPaymentFailed + ":in_" + c.id, CanonicalCustomerId: c.id, SourceEventIds: []string{"evt_" + c.id},
			OccurredAt: timestamppb.New(now.Add(-96 * time.Hour)), StripeCustomerId: "cus_" + c.id}
		h.publish(t, msg(t, &billingv1.PaymentFailed{Meta: meta, InvoiceId: "in_" + c.id, Amount: 4900, Currency: "usd", AttemptCount: 1,
			NextPaymentAttempt: timestamppb.New(c.next)}, meta.EventId, "4bf92f3577b34da6a3ce929d0e0e4736"))
	}
	testkit.WaitFor(t, 20*time.Second, "both customers projected", func() bool {
		a, _ := h.get(t, "/v1/customers/cust_ahead", readToken)
		p, _ := h.get(t, "/v1/customers/cust_past", readToken)
		return a == http.StatusOK && p == http.StatusOK
	})

	for id, want := range map[string]string{
		"cust_ahead": projector.StatePaymentFailed + ahead.Format("2006-01-02"),
		"cust_past":  projector.StatePaymentRetryDue + past.Format("2006-01-02"),
	} {
		code, body := h.get(t, "/v1/customers/"+id, readToken)
		validateResponse(t, http.MethodGet, "/v1/customers/{id}", code, body)
		var v projector.View
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		if v.State != want || v.States[0] != want {
			t.Errorf("%s: state %q, want %q", id, v.State, want)
		}
	}
	code, body := h.get(t, "/v1/status", readToken)
	validateResponse(t, http.MethodGet, "/v1/status", code, body)
	var st struct {
		ByState map[string]int `json:"customers_by_state"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{projector.KindRetryScheduled: 1, projector.KindRetryOverdue: 1}; !maps.Equal(st.ByState, want) {
		t.Fatalf("customers by state = %v, want %v", st.ByState, want)
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
	v := projector.Fold("cust_s", entries(t, s.out))
	if v.Email != "s@example.com" || !slices.Equal(v.UnverifiedEmails, []string{"typed-on-a-card-form@example.net"}) {
		t.Fatalf("email %q, unverified %q; want the profile email kept and the typed one listed apart", v.Email, v.UnverifiedEmails)
	}
}
