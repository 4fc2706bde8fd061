package identity

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchyard/switchyard/platform/emailaddr"
	"github.com/switchyard/switchyard/platform/sinktext"
)

// Text identity takes from Stripe is normalised once, where it is read
// (Facts.normalise in ExtractFacts, normaliseMessage at the end of Derive,
// a product's name read from the Stripe API), so that every store and
// vendor downstream can hold it: PostgreSQL refuses a NUL byte, protobuf
// and the vendors refuse invalid UTF-8, and a 20,000-character name is no
// name. A value that cannot be held is normalised, never a dead letter;
// the original stays in the STRIPE stream (the gateway stores the raw
// bytes), so a normalised value can always be compared with what Stripe
// sent.
//
// The rules of clean text and of a usable email are the hub's, not
// identity's: they live in platform/sinktext, which the sinks use too, so
// what identity lets through is what every sink accepts. Identity keeps
// its own limits, its ids, lower-cased emails and the walk over messages.
const (
	// maxNameRunes caps names: a customer's, a product's, a price's.
	maxNameRunes = 256
	// maxTextRunes caps any other text (a decline message, a reason).
	maxTextRunes = 1024
	// maxIDBytes is the longest id Stripe documents (255 characters).
	maxIDBytes = 255
)

// cleanText makes s one line of text any store or vendor can hold
// (sinktext.Line: valid UTF-8, no control or invisible format characters,
// white space folded to single spaces, trimmed), at most limit runes, the
// last of them "…" when it was cut (sinktext.Truncate). Text that needs
// none of this is returned without allocating.
func cleanText(s string, limit int) string {
	s, _ = sinktext.Truncate(sinktext.Line(s), limit, sinktext.Runes)
	return s
}

// cleanEmail returns the email in the hub's one key form (emailaddr.Key:
// trimmed, lower case), or "" when that is not an address the sinks accept.
// An invalid email is treated as no email: downstream it would be refused as
// a CRM key or a requester and dead-letter there.
func cleanEmail(s string) string {
	e, ok := emailaddr.Key(s)
	if !ok {
		return ""
	}
	return e
}

// cleanID returns s if it can be a Stripe id or token (an object kind, a
// status) — ASCII letters, digits, '_', '-' and '.', at most maxIDBytes —
// and "" otherwise. An id is never cut or rewritten (another id would name
// another object): one that cannot be Stripe's names nothing. (stripe-go
// takes an unexpanded reference's id from the JSON without unescaping it,
// so an id can hold anything: a backslash, a NUL escape, invalid UTF-8.)
func cleanID(s string) string {
	if len(s) > maxIDBytes {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return ""
		}
	}
	return s
}

// messageLimits caps the text fields of billing messages by field name:
// names are short; every other string (ids, codes, a decline message) is
// held to maxTextRunes. Email fields are validated instead (cleanEmail).
var messageLimits = map[protoreflect.Name]int{
	"name": maxNameRunes, "product_name": maxNameRunes, "price_nickname": maxNameRunes,
}

// emailFields are the string fields that hold an email.
var emailFields = map[protoreflect.Name]bool{"email": true, "unverified_email": true}

// normaliseMessage normalises every string field of m and of the messages
// it holds, in place, with cleanText (cleanEmail for emails): whatever
// field a billing message gains, no text leaves identity that a
// subscriber's store or vendor cannot hold.
func normaliseMessage(m proto.Message) {
	normaliseReflect(m.ProtoReflect())
}

func normaliseReflect(m protoreflect.Message) {
	type set struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var sets []set
	clean := func(fd protoreflect.FieldDescriptor, s string) string {
		if emailFields[fd.Name()] {
			return cleanEmail(s)
		}
		limit, ok := messageLimits[fd.Name()]
		if !ok {
			limit = maxTextRunes
		}
		return cleanText(s, limit)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			// No billing message has a map; a map of text would be cleaned
			// here.
		case fd.IsList() && fd.Kind() == protoreflect.StringKind:
			l := v.List()
			for i := range l.Len() {
				if s := l.Get(i).String(); clean(fd, s) != s {
					l.Set(i, protoreflect.ValueOfString(clean(fd, s)))
				}
			}
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := range l.Len() {
				normaliseReflect(l.Get(i).Message())
			}
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); clean(fd, s) != s {
				sets = append(sets, set{fd, protoreflect.ValueOfString(clean(fd, s))})
			}
		case fd.Kind() == protoreflect.MessageKind:
			normaliseReflect(v.Message())
		}
		return true
	})
	for _, s := range sets {
		m.Set(s.fd, s.v)
	}
}
