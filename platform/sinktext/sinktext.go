// Package sinktext normalises text that came from outside — Stripe
// payloads (names, emails, descriptions, decline messages), vendor answers,
// dead-letter reasons quoting either — before a sink hands it to a vendor
// that a person reads: Slack, Zendesk, HubSpot.
//
// It is the part every sink shares: valid UTF-8, no control or invisible
// formatting characters (NUL, BEL, bidi overrides and isolates, zero-width
// characters), whitespace folded to one line where a value is one line,
// lengths capped in the unit the vendor counts, and the email check the
// sinks use before an email becomes an upsert key or a ticket requester.
// Each sink's own markup rules (Slack mrkdwn, Zendesk's Markdown-capable
// body) stay with its adapter, which builds on these.
//
// Every function is pure and safe for concurrent use; none returns an
// error: text that cannot be kept as it came is kept in a form that can.
package sinktext

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Ellipsis marks a value cut by Truncate.
const Ellipsis = "…"

// Clean returns s as valid UTF-8 (each invalid byte becomes U+FFFD)
// without control characters (C0, DEL, C1: NUL, BEL, ESC …) or invisible
// format characters (Unicode category Cf: the bidi embeddings, overrides
// and isolates U+202A–U+202E and U+2066–U+2069, LRM/RLM, zero-width
// spaces and joiners, the byte-order mark, tag characters). Tabs and line
// breaks are kept as "\t" and "\n" (CR LF, CR and the Unicode line and
// paragraph separators all become "\n").
//
// Stripping Cf also drops the zero-width joiner inside emoji sequences
// (a family emoji shows as its members): a fair price for text in which no
// character can hide, reorder or disguise what a person reads.
func Clean(s string) string {
	if isClean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == '\r':
			if i < len(s) && s[i] == '\n' {
				i++
			}
			b.WriteByte('\n')
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\u2028' || r == '\u2029':
			b.WriteByte('\n')
		case drop(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// drop reports a character Clean removes.
func drop(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

func isClean(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\r' || r == '\u2028' || r == '\u2029' || r != '\n' && r != '\t' && drop(r) {
			return false
		}
		i += size
	}
	return true
}

// Line is Clean folded to one line: every run of white space (line breaks
// and tabs included) becomes one space, and the ends are trimmed.
func Line(s string) string {
	return strings.Join(strings.Fields(Clean(s)), " ")
}

// Unit is what a length limit counts.
type Unit int

const (
	// Runes counts Unicode code points (what most people call characters).
	Runes Unit = iota
	// Bytes counts UTF-8 bytes (limits given in KB).
	Bytes
	// UTF16 counts UTF-16 code units, as Java and JavaScript strings do; a
	// character outside the Basic Multilingual Plane (most emoji) counts 2.
	// A limit in "characters" from a vendor whose backend is Java is safe
	// in this unit whichever way the vendor counts.
	UTF16
)

func (u Unit) size(r rune) int {
	switch u {
	case Bytes:
		return utf8.RuneLen(r)
	case UTF16:
		if n := utf16.RuneLen(r); n > 0 {
			return n
		}
		return 1
	}
	return 1
}

// Len is the length of s in unit u (invalid bytes count as U+FFFD does).
func Len(s string, u Unit) int {
	n := 0
	for _, r := range s {
		n += u.size(r)
	}
	return n
}

// Truncate returns s when it is at most limit long in unit u; otherwise
// the longest prefix that, with Ellipsis appended, is, and true. It never
// cuts inside a character. A limit too small to hold the ellipsis gives "".
func Truncate(s string, limit int, u Unit) (string, bool) {
	if Len(s, u) <= limit {
		return s, false
	}
	room := limit - Len(Ellipsis, u)
	if room < 0 {
		return "", true
	}
	n, end := 0, 0
	for i, r := range s {
		if n+u.size(r) > room {
			break
		}
		n += u.size(r)
		end = i + utf8.RuneLen(r)
	}
	return strings.TrimRightFunc(s[:end], unicode.IsSpace) + Ellipsis, true
}

// MaxEmail is the longest email address SMTP can deliver to (RFC 5321's
// 256-octet path less its angle brackets); vendors refuse longer ones.
const MaxEmail = 254

// ValidEmail reports whether s is an address the hub may use as a vendor
// key or a ticket requester: a bare addr-spec (no display name, no
// comments, no quotes, no white space), at most MaxEmail bytes with a
// local part of at most 64, and a domain of at least two dot-separated
// labels of ASCII letters, digits and inner hyphens, the last alphabetic
// (or punycode "xn--"). It is stricter than RFC 5322 on purpose: HubSpot
// and Zendesk refuse what it refuses (spaces, no "@", quoted local parts,
// dotless or numeric domains), and an address it accepts but a vendor
// still refuses is handled by that sink as the same inert outcome.
func ValidEmail(s string) bool {
	if s == "" || len(s) > MaxEmail || s != strings.TrimSpace(s) || strings.ContainsAny(s, " \t\r\n\"(),:;<>[\\]") {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at > 64 || at == len(s)-1 {
		return false
	}
	if a, err := mail.ParseAddress(s); err != nil || a.Name != "" || a.Address != s {
		return false
	}
	labels := strings.Split(strings.ToLower(s[at+1:]), ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	if strings.HasPrefix(tld, "xn--") {
		return len(tld) > 4
	}
	if len(tld) < 2 {
		return false
	}
	for _, r := range tld {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}
