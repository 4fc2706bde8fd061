package alerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/natsbus"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

const console = "https://ops.switchyard.example"

// maxShown is the most characters of one value an alert may show
// (slack.MaxValue, with its ellipsis).
const maxShown = 300

var (
	consoleLink = regexp.MustCompile(`<` + regexp.QuoteMeta(console) + `/[^|<>\s]*\|[^<>|]*>`)
	codeSpan    = regexp.MustCompile("`[^`\n]*`")
	entity      = regexp.MustCompile(`&(amp|lt|gt);`)
)

// assertInert fails unless Slack text shows data only as inert text: valid
// UTF-8, no control or invisible formatting characters, no live <…>
// sequence (mention, <!channel>, link) other than links to the console, &
// only in Slack's three escapes, balanced code spans each holding at most
// maxShown characters, and no trace of the data (named by markers) outside
// a code span.
func assertInert(t *testing.T, text string, markers ...string) {
	t.Helper()
	if !utf8.ValidString(text) {
		t.Fatalf("Slack text is not valid UTF-8: %q", text)
	}
	for _, r := range text {
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			t.Errorf("Slack text carries %U: %.200q", r, text)
		}
	}
	rest := consoleLink.ReplaceAllString(text, "")
	if strings.ContainsAny(rest, "<>") {
		t.Errorf("Slack text has a live < or > (a mention or link from data): %.300q", text)
	}
	if strings.Contains(entity.ReplaceAllString(rest, ""), "&") {
		t.Errorf("Slack text has an unescaped &: %.300q", text)
	}
	for _, line := range strings.Split(rest, "\n") {
		if strings.Count(line, "`")%2 != 0 {
			t.Errorf("unbalanced code span (data closed it): %.300q", line)
		}
	}
	for _, span := range codeSpan.FindAllString(rest, -1) {
		shown := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(strings.Trim(span, "`"))
		if n := utf8.RuneCountInString(shown); n > maxShown {
			t.Errorf("a value shows %d characters, more than %d", n, maxShown)
		}
	}
	outside := codeSpan.ReplaceAllString(rest, "")
	for _, m := range markers {
		if strings.Contains(outside, m) {
			t.Errorf("data %q appears outside a code span: %.300q", m, outside)
		}
	}
}

// markers are fragments of the corpus that must only ever appear inside a
// code span.
var markers = []string{"evil", "channel>", "@here", "U024BE7LH", "script", "onerror", "Ignore previous", "ignore previous", "AAAA", "*bold*", "Lovelace", "invoice", "ringring"}

// noDeadLetters fails if any of alerts' own consumers dead-lettered.
func noDeadLetters(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	s, err := js.Stream(context.Background(), natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"dlq.alerts", "dlq.alerts_crm_retries"} {
		m, err := s.GetLastMsgForSubject(context.Background(), subject)
		if err == nil {
			dl, _ := consumer.DecodeDeadLetter(m.Data)
			t.Fatalf("alerts dead-lettered on %s: %+v", subject, dl)
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
	}
}

// protoSafe is what the proto3 wire can carry of a value: invalid UTF-8
// never reaches a service in a protobuf string field (Marshal refuses it).
func protoSafe(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func publishDeadLetter(t *testing.T, js jetstream.JetStream, dlqSubject, id string, d *consumer.DeadLetter) {
	t.Helper()
	raw, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: dlqSubject, Data: raw, Header: nats.Header{wire.HeaderMsgID: {id}}}); err != nil {
		t.Fatal(err)
	}
}

// Every hostile value in a dead letter — the customer's name, id and email
// in the failed billing event, the reason (vendor answers quoted), the
// consumer, the subject, the message id — reaches Slack as inert text, in
// the alert, the folded-alerts summary and the retry-storm alert; links go
// only to the console; nothing dead-letters.
func TestHostileDeadLettersAlertInert(t *testing.T) {
	js, sl := startWith(t, map[string]string{"SWITCHYARD_CONSOLE_URL": console, "ALERTS_WINDOW": "2s"})
	corpus := testkit.HostileCorpus()
	want := 0
	for i, h := range corpus {
		v := protoSafe(h.Value)
		// A failed ticket in a critical flow: never folded, so every entry
		// gets its own alert; the hostile text is in the billing event and
		// the reason.
		ev := &billingv1.RefundIssued{Meta: &billingv1.EventMeta{EventId: fmt.Sprintf("h%d", i), CanonicalCustomerId: v, Email: v},
			RefundId: "re_1", Reason: v}
		data, _ := proto.Marshal(ev)
		publishDeadLetter(t, js, "dlq.support", fmt.Sprintf("dlq:support:%d", i), &consumer.DeadLetter{
			OriginalSubject: subjects.BillingRefundIssued, OriginalHeaders: nats.Header{wire.HeaderMsgID: {fmt.Sprintf("h%d", i)}},
			OriginalData: data, Consumer: "support", Class: errclass.ClassPermanent,
			Reason: "zendesk: create ticket: http 422 " + v, Attempts: 1, FirstFailureAt: time.Now(), LastFailureAt: time.Now()})
		// A dead letter whose every field is hostile: its consumer is a kind
		// of its own, so it is alerted too.
		publishDeadLetter(t, js, fmt.Sprintf("dlq.h%d", i), fmt.Sprintf("dlq:h:%d", i), &consumer.DeadLetter{
			OriginalSubject: v, OriginalHeaders: nats.Header{wire.HeaderMsgID: {v + fmt.Sprint(i)}},
			Consumer: v + fmt.Sprint(i), Class: errclass.ClassTransient, Reason: v, Attempts: 3,
			FirstFailureAt: time.Now(), LastFailureAt: time.Now()})
		want += 2
		if i == 0 {
			// One more of that hostile kind within the window: folded, then
			// reported by the summary.
			publishDeadLetter(t, js, "dlq.h0", "dlq:h0:again", &consumer.DeadLetter{
				OriginalSubject: "x", OriginalHeaders: nats.Header{wire.HeaderMsgID: {"again"}},
				Consumer: v + "0", Class: errclass.ClassTransient, Reason: "again", Attempts: 3,
				FirstFailureAt: time.Now(), LastFailureAt: time.Now()})
			want++
		}
	}
	// A retry storm whose last reason is hostile.
	for i := 0; i < 3; i++ {
		p := &crmv1.ContactPendingRetry{EventId: fmt.Sprintf("s%d", i), Attempt: 1, NextAttemptAt: timestamppb.Now(), ErrorClass: errclass.ClassTransient.Proto(),
			Reason: protoSafe("hubspot: http 503 <!channel> <https://evil.example|Reset your password> " + corpus[len(corpus)-5].Value)}
		data, _ := proto.Marshal(p)
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subjects.CRMContactPendingRetry, Data: data,
			Header: nats.Header{wire.HeaderMsgID: {p.EventId}}}); err != nil {
			t.Fatal(err)
		}
	}
	want++
	testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("%d alerts", want), func() bool {
		if len(sl.Messages()) >= want {
			return true
		}
		noDeadLetters(t, js)
		return false
	})

	var sawLink, sawSummary, sawStorm, sawChannel bool
	for _, m := range sl.Messages() {
		// What was meant to be read still is: <!channel> shown as text.
		sawChannel = sawChannel || strings.Contains(m.Text, "&lt;!channel&gt;")
		assertInert(t, m.Text, markers...)
		sawLink = sawLink || consoleLink.MatchString(m.Text)
		sawSummary = sawSummary || strings.Contains(m.Text, "more dead letter(s)")
		sawStorm = sawStorm || strings.Contains(m.Text, "retry storm")
		var raw map[string]any
		if err := json.Unmarshal(m.Raw, &raw); err != nil {
			t.Fatal(err)
		}
		if raw["unfurl_links"] != false || raw["unfurl_media"] != false {
			t.Errorf("alert posted with link previews on: %s", m.Raw)
		}
	}
	if !sawLink || !sawSummary || !sawStorm || !sawChannel {
		t.Errorf("console link %v, folded summary %v, storm alert %v, <!channel> shown as text %v: want all", sawLink, sawSummary, sawStorm, sawChannel)
	}
	noDeadLetters(t, js)
}

// The daily digest shows what the status API says (customer states,
// problems it could not read) as inert text.
func TestHostileDigestInert(t *testing.T) {
	corpus := testkit.HostileCorpus()
	states := map[string]int{}
	var problems []string
	for i, h := range corpus {
		states[h.Value] = i + 1
		problems = append(problems, h.Value)
	}
	body, err := json.Marshal(map[string]any{"from": "2026-11-26T09:00:00Z", "to": "2026-11-27T09:00:00Z", "stripe_events": 1,
		"failures_open": 2, "customers_by_state": states, "problems": problems})
	if err != nil {
		t.Fatal(err)
	}
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer status.Close()
	js, sl := startWith(t, map[string]string{"ALERTS_DIGEST_AT": "00:00", "SWITCHYARD_OPS_URL": status.URL,
		"SWITCHYARD_OPS_TOKEN": "digest-reader-0123456789abcdef", "SWITCHYARD_CONSOLE_URL": console})
	testkit.WaitFor(t, 20*time.Second, "the digest in Slack", func() bool { return len(sl.Messages()) == 1 })
	text := sl.Messages()[0].Text
	assertInert(t, text, markers...)
	if !strings.Contains(text, "Switchyard daily digest") || !consoleLink.MatchString(text) {
		t.Errorf("digest lacks its title or the console link:\n%.500s", text)
	}
	noDeadLetters(t, js)
}
