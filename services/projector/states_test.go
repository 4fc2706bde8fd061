package projector_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

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
		"cust_ahead": view.StatePaymentFailed + ahead.Format("2006-01-02"),
		"cust_past":  view.StatePaymentRetryDue + past.Format("2006-01-02"),
	} {
		code, body := h.get(t, "/v1/customers/"+id, readToken)
		validateResponse(t, http.MethodGet, "/v1/customers/{id}", code, body)
		var v view.View
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
	if want := map[string]int{view.KindRetryScheduled: 1, view.KindRetryOverdue: 1}; !maps.Equal(st.ByState, want) {
		t.Fatalf("customers by state = %v, want %v", st.ByState, want)
	}
}
