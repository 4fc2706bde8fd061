package projector_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/opscmd"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/wire"
)

// TestUnlinkedPaymentsInBrowser: a guest payment's dispute (its own
// record, the payer having typed Ada's email) shows on the console's
// Unlinked payments page with Ada as the candidate; a read-only session
// sees the buttons disabled; the operator links it with one click. The
// console sends the link command as the operator and records it in the
// audit log; identity's part is played here by a responder that answers
// and announces the merge as identity does (services/switchyard's
// TestOperatorLinksAnUnlinkedPaymentThroughTheConsole runs the real one),
// after which the dispute is on Ada's page and the list is empty.
func TestUnlinkedPaymentsInBrowser(t *testing.T) {
	h := start(t, nil)
	now := timestamppb.New(time.Now().Add(-time.Hour))
	h.publish(t,
		msg(t, &billingv1.CustomerUpserted{Meta: &billingv1.EventMeta{EventId: "up-ada", CanonicalCustomerId: "cust_ada", OccurredAt: now,
			StripeCustomerId: "cus_ada", Email: "ada@example.com"}, Email: "ada@example.com", Name: "Ada Lovelace", StripeCustomerIds: []string{"cus_ada"}},
			"up-ada", "4bf92f3577b34da6a3ce929d0e0e4736"),
		msg(t, &billingv1.DisputeOpened{Meta: &billingv1.EventMeta{EventId: "dp-guest", CanonicalCustomerId: "cust_guest", OccurredAt: now,
			UnverifiedEmail: "ada@example.com"}, Dispute: &billingv1.Dispute{DisputeId: "dp_guest", ChargeId: "ch_guest", Amount: 4900, Currency: "usd", Status: "needs_response"}},
			"dp-guest", "5bf92f3577b34da6a3ce929d0e0e4736"),
	)
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))

	// identity's part: answer the command, announce the merge.
	var commands atomic.Int32
	nc := h.js.Conn()
	sub, err := nc.Subscribe(wire.OpsLinkCustomer, func(m *nats.Msg) {
		commands.Add(1)
		var l opscmd.Link
		_ = json.Unmarshal(m.Data, &l)
		if l.GuestID != "cust_guest" || l.CustomerID != "cust_ada" || l.Actor != "founder" {
			b, _ := json.Marshal(opscmd.LinkReply{Code: opscmd.CodeInvalid, Error: "unexpected command"})
			_ = m.Respond(b)
			return
		}
		h.publish(t, msg(t, &billingv1.CustomerUpserted{Meta: &billingv1.EventMeta{EventId: "link-guest", CanonicalCustomerId: "cust_ada",
			OccurredAt: timestamppb.Now(), StripeCustomerId: "cus_ada", Email: "ada@example.com"}, Email: "ada@example.com", Name: "Ada Lovelace",
			StripeCustomerIds: []string{"cus_ada"}, MergedCanonicalIds: []string{"cust_guest"}}, "link-guest", "6bf92f3577b34da6a3ce929d0e0e4736"))
		b, _ := json.Marshal(opscmd.LinkReply{CustomerID: "cust_ada"})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	s := newSession(t)
	s.login(h.api, readToken)
	s.step("unlinked payments (read only)", chromedp.Navigate(h.api+"/console/unlinked"), chromedp.WaitVisible(chromedp.ID("unlinked-cust_guest")))
	row := s.text("#unlinked-cust_guest")
	for _, want := range []string{"ada@example.com", "cust_ada", "Ada Lovelace", "dispute"} {
		if !strings.Contains(row, want) {
			t.Errorf("unlinked row lacks %q:\n%s", want, row)
		}
	}
	var disabled bool
	s.eval(`document.querySelector('#unlinked-cust_guest button.link-candidate').disabled`, &disabled)
	if !disabled {
		t.Error("a read-only session can press Link")
	}

	s = newSession(t)
	s.login(h.api, operateToken)
	s.step("unlinked payments", chromedp.Navigate(h.api+"/console/unlinked"), chromedp.WaitVisible(chromedp.ID("unlinked-cust_guest")))
	s.shot("20-unlinked.png")
	s.step("link to the candidate", chromedp.Click(chromedp.CSS(`#unlinked-cust_guest button.link-candidate`)), chromedp.WaitVisible(chromedp.ID("linked")))
	s.shot("21-linked.png")
	if n := commands.Load(); n != 1 {
		t.Fatalf("%d link commands, want 1", n)
	}
	testkit.WaitFor(t, 20*time.Second, "the merge projected", h.settled(t))
	s.step("unlinked payments again", chromedp.Navigate(h.api+"/console/unlinked"), chromedp.WaitVisible(chromedp.ID("unlinked")))
	if got := s.text("#unlinked"); !strings.Contains(got, "No unlinked payments.") {
		t.Errorf("after the link the list shows:\n%s", got)
	}
	s.step("Ada", chromedp.Navigate(h.api+"/console/customers/cust_ada"), chromedp.WaitVisible(chromedp.ID("timeline")))
	if tl := s.text("#timeline"); !strings.Contains(tl, "dp_guest") && !strings.Contains(tl, "Dispute") {
		t.Errorf("Ada's timeline lacks the guest dispute:\n%s", tl)
	}
	s.step("audit log", chromedp.Navigate(h.api+"/console/audit"), chromedp.WaitVisible(chromedp.ID("audit")))
	if got := s.text("#audit"); !strings.Contains(got, "customer cust_guest (link to cust_ada)") || !strings.Contains(got, "linked to cust_ada") {
		t.Errorf("audit log:\n%s", got)
	}
	var n int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM ops_audit WHERE action = 'link' AND actor = 'founder' AND result = 'linked to cust_ada'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d link audit records (%v), want 1", n, err)
	}
}
