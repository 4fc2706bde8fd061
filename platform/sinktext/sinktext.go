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

// Clean returns s as valid UTF-8 (each run of invalid bytes becomes one
// U+FFFD, as strings.ToValidUTF8 does) without control characters (C0,
// DEL, C1: NUL, BEL, ESC …) or invisible format characters (Unicode
// category Cf: the bidi embeddings, overrides and isolates U+202A–U+202E
// and U+2066–U+2069, LRM/RLM, zero-width spaces and joiners, the
// byte-order mark, tag characters). Tabs and line breaks are kept as "\t"
// and "\n": CR LF, CR, VT, FF, NEL and the Unicode line and paragraph
// separators all become "\n" (they break a line, so dropping them would
// glue two words into one).
//
// Stripping Cf also drops the zero-width joiner inside emoji sequences
// (a family emoji shows as its members): a fair price for text in which no
// character can hide, reorder or disguise what a person reads.
//
// Text that needs none of this is returned as it is, without allocating.
func Clean(s string) string {
	if isClean(s) {
		return s
	}
	return clean(s, false)
}

// Line is Clean folded to one line: every run of white space (line
// breaks, tabs and Unicode spaces such as U+00A0 included) becomes one
// space, and the ends are trimmed.
//
// Text that is already one such line is returned as it is, without
// allocating: identity runs every name and message it reads through Line.
func Line(s string) string {
	if isLine(s) {
		return s
	}
	return clean(s, true)
}

// clean is Clean (oneLine false) and Line (oneLine true) for text that
// needs work, in one pass.
func clean(s string, oneLine bool) string {
	var b strings.Builder
	b.Grow(len(s))
	space, invalid := false, false // a space is owed; the last byte was invalid
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			if !invalid {
				if space {
					b.WriteByte(' ')
					space = false
				}
				b.WriteRune(utf8.RuneError)
			}
			invalid = true
			continue
		}
		invalid = false
		switch {
		case oneLine && unicode.IsSpace(r):
			space = b.Len() > 0
		case oneLine && drop(r):
		case oneLine:
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteRune(r)
		case r == '\r':
			if i < len(s) && s[i] == '\n' {
				i++
			}
			b.WriteByte('\n')
		case lineBreak(r):
			b.WriteByte('\n')
		case r == '\t':
			b.WriteByte('\t')
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

// lineBreak reports a character other than CR that Clean makes "\n": the
// mandatory breaks of Unicode's line breaking algorithm (UAX #14, class BK
// and LF).
func lineBreak(r rune) bool {
	switch r {
	case '\n', '\v', '\f', '\u0085', '\u2028', '\u2029':
		return true
	}
	return false
}

// isClean reports whether Clean(s) is s. ASCII is decided a byte at a
// time; only other characters are decoded.
func isClean(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < ' ' && c != '\n' && c != '\t' || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' || drop(r) {
			return false
		}
		i += size
	}
	return true
}

// isLine reports whether Line(s) is s: no white space but single spaces
// between other characters, and nothing Clean would change.
func isLine(s string) bool {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c > ' ' && c < 0x7f: // printable ASCII, the common case
		case c == ' ':
			if i == 0 || i == len(s)-1 || s[i-1] == ' ' {
				return false
			}
		case c < utf8.RuneSelf: // an ASCII control character
			return false
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || unicode.IsSpace(r) || drop(r) {
				return false
			}
			i += size
			continue
		}
		i++
	}
	return true
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
	// No character counts more in runes or UTF-16 units than in bytes: a
	// short s fits without counting (an invalid byte counts 3 in Bytes).
	if len(s) <= limit && (u != Bytes || utf8.ValidString(s)) || Len(s, u) <= limit {
		return s, false
	}
	room := limit - Len(Ellipsis, u)
	if room < 0 {
		return "", true
	}
	n, end := 0, 0
	for end < len(s) {
		r, size := utf8.DecodeRuneInString(s[end:])
		if n+u.size(r) > room {
			break
		}
		n += u.size(r)
		end += size // an invalid byte is one byte, though it counts as U+FFFD
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
//
// A local part may hold non-ASCII letters (RFC 6531), but only visible
// ones: invalid UTF-8, U+FFFD, control and format characters (bidi
// overrides, zero-width characters) and every kind of space are refused,
// since net/mail lets them through and an address is a key: no invisible
// character may make two keys of what a person reads as one address.
func ValidEmail(s string) bool {
	if s == "" || len(s) > MaxEmail || strings.ContainsAny(s, " \t\r\n\"(),:;<>[\\]") {
		return false
	}
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return false
		}
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
