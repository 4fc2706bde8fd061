package zendesk

import (
	"fmt"
	"strings"

	"github.com/switchyard/switchyard/platform/sinktext"
)

// Limits of what a ticket carries. Zendesk refuses or silently cuts text
// beyond its own limits; the client cuts first, visibly, so a ticket is
// never refused for its length and an agent can tell that it was cut.
const (
	// MaxSubject is the longest subject sent, in characters. Zendesk's API
	// reference gives no limit for subject; the field is observed to keep
	// 255 characters and drop the rest silently, and mail clients and the
	// agent's ticket list show far fewer. 150 leaves room below both, and
	// the full text is in the body and the event log.
	MaxSubject = 150
	// MaxBody is the longest comment body sent, in UTF-8 bytes. Zendesk
	// limits a comment to 64 KB ("roughly 65,000 characters depending on
	// encoding"); 60,000 bytes stays under it whatever the script, with
	// room for the note that says the body was cut.
	MaxBody = 60000
	// MaxName is the longest requester name sent, in characters (Zendesk
	// user names are short text; an email-long name always fits).
	MaxName = 255
	// MaxValue is how many characters of one value (a name, a reason, an
	// id) Value keeps, so no single field can crowd the rest of the ticket
	// out of MaxBody.
	MaxValue = 1000
)

// bodyCutNote ends a body that was cut to MaxBody.
const bodyCutNote = "\n\n[Switchyard: this note was cut to fit Zendesk's size limit; the whole event is in Switchyard's event log.]"

// subjectCutNote ends the body of a ticket whose subject was cut.
const subjectCutNote = "\n\n[Switchyard: the subject was cut to %d characters.]"

// Value is the one way a value that came from outside (a customer name or
// email, a Stripe reason, an id) enters a ticket's subject or body. The
// body is sent as comment.body, plain text — never html_body — but Zendesk
// renders Markdown in it for agents, so Value returns the value as inert
// plain text:
//
//   - sinktext.Line: valid UTF-8, no NUL or other control characters, no
//     bidi or zero-width characters, one line (a value cannot start a line
//     of its own, where Markdown would read a heading, a quote or a link
//     reference definition);
//   - cut to MaxValue characters with an ellipsis;
//   - Markdown link and image syntax broken ("](" becomes "] ("), so
//     "[Reset your password](https://evil.example)" shows its real target
//     as text instead of hiding it behind a label.
//
// HTML needs nothing here: Zendesk shows a plain body's tags as text.
func Value(s string) string {
	s, _ = sinktext.Truncate(sinktext.Line(s), MaxValue, sinktext.Runes)
	return strings.ReplaceAll(s, "](", "] (")
}

// normalize applies the limits to a ticket about to be sent: subject one
// clean line of at most MaxSubject characters, body clean (line breaks
// kept) and at most MaxBody bytes, requester name at most MaxName
// characters. Whatever is cut ends with an ellipsis and the body says so.
func normalize(t NewTicket) NewTicket {
	var cut bool
	t.Subject, cut = sinktext.Truncate(sinktext.Line(t.Subject), MaxSubject, sinktext.Runes)
	body := strings.TrimSpace(sinktext.Clean(t.Body))
	var notes string
	if cut {
		notes = fmt.Sprintf(subjectCutNote, MaxSubject)
	}
	if len(body)+len(notes) > MaxBody {
		body, _ = sinktext.Truncate(body, MaxBody-len(bodyCutNote)-len(notes), sinktext.Bytes)
		notes = bodyCutNote + notes
	}
	body += notes
	t.Body = body
	if r := t.Requester; r != nil {
		name, _ := sinktext.Truncate(sinktext.Line(r.Name), MaxName, sinktext.Runes)
		t.Requester = &Requester{Name: name, Email: strings.TrimSpace(r.Email)}
	}
	return t
}
