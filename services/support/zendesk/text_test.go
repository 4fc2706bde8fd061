package zendesk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	emulator "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

// hidden reports a character that must not reach a ticket: a control
// character other than a line break or tab, or an invisible format
// character (bidi, zero-width).
func hidden(s string) (rune, bool) {
	for _, r := range s {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			return r, true
		}
	}
	return 0, false
}

func TestValueMakesHostileValuesInert(t *testing.T) {
	for _, h := range testkit.HostileCorpus() {
		t.Run(h.Name, func(t *testing.T) {
			got := zendesk.Value(h.Value)
			if !utf8.ValidString(got) {
				t.Fatalf("Value(%.80q) is not valid UTF-8", h.Value)
			}
			if r, ok := hidden(got); ok || strings.ContainsAny(got, "\n\t") {
				t.Errorf("Value(%.80q) keeps %U or a line break", h.Value, r)
			}
			if strings.Contains(got, "](") {
				t.Errorf("Value(%.80q) = %.200q: a live Markdown link", h.Value, got)
			}
			if n := utf8.RuneCountInString(got); n > zendesk.MaxValue {
				t.Errorf("Value keeps %d characters, more than %d", n, zendesk.MaxValue)
			}
		})
	}
	if got, want := zendesk.Value("[Reset your password](https://evil.example)"), "[Reset your password] (https://evil.example)"; got != want {
		t.Errorf("Value = %q, want %q", got, want)
	}
}

// Tickets are plain text: the client has no way to send html_body, and the
// body arrives as sent, markup shown as text.
func TestTicketsArePlainText(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[zendesk.NewTicket](), reflect.TypeFor[zendesk.Requester]()} {
		for f := range typ.Fields() {
			if name := strings.ToLower(f.Name + string(f.Tag)); strings.Contains(name, "html") {
				t.Errorf("%s has a field %s: tickets must be plain text", typ, f.Name)
			}
		}
	}
	e := newEnv(t, emulator.Options{})
	nt := newTicket("plain-1")
	nt.Body = "<script>alert(1)</script> <b>bold</b> [x](https://evil.example)"
	tk, err := e.client.CreateTicket(context.Background(), nt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.srv.Requests() {
		if r.Method != http.MethodPost {
			continue
		}
		var sent struct {
			Ticket struct {
				Comment map[string]json.RawMessage `json:"comment"`
			} `json:"ticket"`
		}
		if err := json.Unmarshal(r.Body, &sent); err != nil {
			t.Fatal(err)
		}
		if _, ok := sent.Ticket.Comment["body"]; !ok || len(sent.Ticket.Comment) != 2 || strings.Contains(string(r.Body), "html_body") {
			t.Errorf("comment sent as %s, want only body and public", r.Body)
		}
	}
	if got, _ := e.srv.Ticket(tk.ID); got.Description != nt.Body {
		t.Errorf("stored body %q, want %q as sent", got.Description, nt.Body)
	}
}

// Over-long or dirty text is cut and cleaned, never refused: the ticket is
// created, within the limits, and its body says what was cut.
func TestTicketLimits(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	nt := newTicket("limits-1")
	nt.Subject = "Refund to \u202Egnp.exe\u202C " + strings.Repeat("Ada ", 5000)
	nt.Body = "first line\x00\x07\r\nsecond \xff line\n" + strings.Repeat("é", 100000)
	nt.Requester.Name = strings.Repeat("N", 1000)
	tk, err := e.client.CreateTicket(context.Background(), nt)
	if err != nil {
		t.Fatalf("an over-long ticket was refused: %v", err)
	}
	got, _ := e.srv.Ticket(tk.ID)
	if n := utf8.RuneCountInString(got.Subject); n > zendesk.MaxSubject || !strings.HasSuffix(got.Subject, "…") {
		t.Errorf("subject of %d characters, want at most %d ending in an ellipsis", n, zendesk.MaxSubject)
	}
	if len(got.Description) > zendesk.MaxBody || !strings.Contains(got.Description, "cut to fit Zendesk's size limit") ||
		!strings.Contains(got.Description, "subject was cut") {
		t.Errorf("body of %d bytes, want at most %d with notes saying what was cut", len(got.Description), zendesk.MaxBody)
	}
	for _, s := range []string{got.Subject, got.Description} {
		if r, ok := hidden(s); ok || !utf8.ValidString(s) {
			t.Errorf("stored text keeps %U or invalid UTF-8: %.80q", r, s)
		}
	}
	if !strings.HasPrefix(got.Description, "first line\nsecond \ufffd line\n") {
		t.Errorf("body starts %.40q: line breaks not kept or bytes not replaced", got.Description)
	}
	if u, ok := e.srv.UserByEmail(customer); !ok || utf8.RuneCountInString(u.Name) > zendesk.MaxName {
		t.Errorf("requester %+v: want a name of at most %d characters", u, zendesk.MaxName)
	}
}
