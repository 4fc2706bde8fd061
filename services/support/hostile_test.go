package support_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/support"
)

// Zendesk's limits as the support service applies them (zendesk.MaxSubject,
// zendesk.MaxBody).
const (
	maxSubject = 150
	maxBody    = 60000
)

// assertTicketInert fails unless a stored ticket is inert plain text within
// Zendesk's limits: valid UTF-8, no control or invisible formatting
// characters, a one-line subject of at most maxSubject characters, a body
// of at most maxBody bytes with no live Markdown link, and a private first
// comment.
func assertTicketInert(t *testing.T, tk zendesk.Ticket) {
	t.Helper()
	for what, s := range map[string]string{"subject": tk.Subject, "body": tk.Description} {
		if !utf8.ValidString(s) {
			t.Errorf("ticket %s: %s is not valid UTF-8", tk.ExternalID, what)
		}
		for _, r := range s {
			if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
				t.Errorf("ticket %s: %s carries %U", tk.ExternalID, what, r)
				break
			}
		}
	}
	if n := utf8.RuneCountInString(tk.Subject); n > maxSubject || strings.Contains(tk.Subject, "\n") {
		t.Errorf("ticket %s: subject of %d characters (or several lines), want one line of at most %d", tk.ExternalID, n, maxSubject)
	}
	if len(tk.Description) > maxBody {
		t.Errorf("ticket %s: body of %d bytes, want at most %d", tk.ExternalID, len(tk.Description), maxBody)
	}
	if strings.Contains(tk.Description, "](") || strings.Contains(tk.Subject, "](") {
		t.Errorf("ticket %s: a live Markdown link: %.300q", tk.ExternalID, tk.Description)
	}
	if len(tk.Comments) != 1 || tk.Comments[0].Public || tk.Comments[0].Body != tk.Description {
		t.Errorf("ticket %s: comments %+v, want one private note", tk.ExternalID, tk.Comments)
	}
}

// noDeadLetter fails if support dead-lettered anything.
func noDeadLetter(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(context.Background(), natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), "dlq.support")
	if err == nil {
		dl, _ := consumer.DecodeDeadLetter(m.Data)
		t.Fatalf("support dead-lettered %s: %s", dl.OriginalMsgID, dl.Reason)
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatal(err)
	}
}

// Every hostile value, as the customer's email, id and Stripe id and as
// the reasons, ids and plan a rule shows, opens its tickets — plain text,
// within Zendesk's limits, without a requester when the email is not an
// address — and nothing dead-letters.
func TestHostileEventsOpenInertTickets(t *testing.T) {
	e := start(t, nil)
	corpus := testkit.HostileCorpus()
	index := map[string]int{}
	for i, h := range corpus {
		index[h.Name] = i
		v := strings.ToValidUTF8(h.Value, "\uFFFD") // all the proto3 wire can carry
		m := func(kind string) *billingv1.EventMeta {
			return &billingv1.EventMeta{EventId: fmt.Sprintf("%s%d", kind, i), CanonicalCustomerId: v, Email: v, StripeCustomerId: v}
		}
		e.publish(t, &billingv1.RefundIssued{Meta: m("r"), RefundId: v, Amount: 1500, Currency: "usd", Reason: v})
		e.publish(t, &billingv1.DisputeOpened{Meta: m("d"), Dispute: &billingv1.Dispute{DisputeId: v, Amount: 4900, Currency: "usd", Reason: v}})
	}
	// A valid email still makes the customer the requester.
	e.publish(t, &billingv1.RefundIssued{Meta: meta("valid"), RefundId: "re_v", Amount: 100, Currency: "usd", Reason: corpus[index["phishing link"]].Value})
	want := 2*len(corpus) + 1
	testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("%d tickets", want), func() bool {
		noDeadLetter(t, e.js)
		return len(e.outcomes(t, subjects.SupportTicketOpened)) == want
	})
	if n := len(e.outcomes(t, subjects.SupportTicketFailed)); n != 0 {
		t.Errorf("%d failed outcomes, want none", n)
	}
	tickets := e.desk.Tickets()
	if len(tickets) != want {
		t.Fatalf("%d tickets in Zendesk, want %d", len(tickets), want)
	}
	for _, tk := range tickets {
		assertTicketInert(t, tk)
	}
	for _, r := range e.desk.Requests() {
		if strings.Contains(string(r.Body), "html_body") {
			t.Fatalf("a request sent html_body: %.300s", r.Body)
		}
	}

	agent, _ := e.desk.UserByEmail("agent@example.com")
	spaces := e.desk.TicketsByExternalID(support.ExternalID("refund", fmt.Sprintf("r%d", index["email with spaces"])))
	if len(spaces) != 1 || spaces[0].RequesterID != agent.ID || !strings.Contains(spaces[0].Description, "not a valid address") ||
		!strings.Contains(spaces[0].Description, "ada lovelace@example.com") {
		t.Errorf("email with spaces: tickets %+v; want one without the customer as requester, saying why", spaces)
	}
	grace, ok := e.desk.UserByEmail("grace@example.com")
	valid := e.desk.TicketsByExternalID(support.ExternalID("refund", "valid"))
	if !ok || len(valid) != 1 || valid[0].RequesterID != grace.ID {
		t.Errorf("valid email: requester %v, tickets %+v; want grace as the requester", ok, valid)
	}
	if u := e.desk.Users(); len(u) != 2 {
		t.Errorf("%d users in Zendesk, want the agent and grace: a hostile email became a user", len(u))
	}
}
