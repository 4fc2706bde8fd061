package identity

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
const (
	// maxNameRunes caps names: a customer's, a product's, a price's.
	maxNameRunes = 256
	// maxTextRunes caps any other text (a decline message, a reason).
	maxTextRunes = 1024
	// maxEmailBytes is the longest address SMTP can carry (RFC 5321's
	// 256-octet path less its angle brackets); a longer one is invalid.
	maxEmailBytes = 254
	// maxIDBytes is the longest id Stripe documents (255 characters).
	maxIDBytes = 255
)

// cleanText makes s one line of text any store or vendor can hold:
// invalid UTF-8 becomes U+FFFD; NUL and every other control character (C0,
// DEL, C1) and the bidirectional embedding, override and isolate controls
// (which reorder what a reader sees) are removed, tabs and line breaks
// become a space; runs of white space become one space; leading and
// trailing space is trimmed; and at most limit runes are kept, the last
// of them "…" when the text was cut.
func cleanText(s string, limit int) string {
	if plainText(s, limit) {
		return s
	}
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
		case unicode.IsControl(r) || bidiControl(r):
		default:
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) <= limit || utf8.RuneCountInString(out) <= limit {
		return out
	}
	n := 0
	for i := range out {
		if n == limit-1 {
			return strings.TrimRight(out[:i], " ") + "…"
		}
		n++
	}
	return out
}

// plainText is cleanText's fast path: printable ASCII without double,
// leading or trailing spaces, within the limit, needs nothing.
func plainText(s string, limit int) bool {
	if len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || (c == ' ' && (i == 0 || i == len(s)-1 || s[i-1] == ' ')) {
			return false
		}
	}
	return true
}

// bidiControl reports the explicit bidirectional formatting characters:
// LRE, RLE, PDF, LRO, RLO (U+202A–U+202E) and LRI, RLI, FSI, PDI
// (U+2066–U+2069).
func bidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069
}

// cleanEmail returns the email normalised (trimmed, lower case), or ""
// when it is not one plain address: what net/mail parses as an address
// with no display name and nothing else, without spaces or control
// characters, at most maxEmailBytes. An invalid email is treated as no
// email: downstream it would be refused as a CRM key or a requester and
// dead-letter there.
func cleanEmail(s string) string {
	if !utf8.ValidString(s) {
		return ""
	}
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" || len(e) > maxEmailBytes ||
		strings.IndexFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || bidiControl(r) }) >= 0 {
		return ""
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
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
