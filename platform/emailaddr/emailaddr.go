// Package emailaddr is the hub's one rule for an email address used as a
// key: how it is normalised (Normalize) and when a normalised address is
// one the hub may key on (Key).
//
// An email is how identity links customers, how the CRM finds a contact
// and how support files a requester, so every service must compare emails
// in one form: "Ada@Example.com " and "ada@example.com" are one person.
// That form is the address trimmed of surrounding white space and in lower
// case; the local part is lowered too (RFC 5321 lets a server tell cases
// apart, but HubSpot and Zendesk do not, and neither do people).
//
// What makes an address usable (one plain addr-spec of at most 254 bytes,
// nothing invisible in it) is sinktext.ValidEmail's rule, which the sinks
// share with the text rules they apply to vendor-bound values; Key applies
// it to the normalised form.
//
// The vendor emulators in platform/devkit keep their own copy on purpose:
// they imitate what HubSpot and Zendesk document, and must not change when
// the hub's rule does, or a test could pass because both sides share a bug.
//
// Every function is pure and safe for concurrent use.
package emailaddr

import (
	"strings"

	"github.com/switchyard/switchyard/platform/sinktext"
)

// Normalize returns e trimmed of surrounding white space and in lower
// case: the form in which the hub stores and compares emails. It does not
// check that e is an address (see Key); "" stays "".
func Normalize(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// Key returns Normalize(e) and whether that is an address the hub may use
// as a key (sinktext.ValidEmail). Lowering comes first, so the address that
// is checked is the one that is kept (strings.ToLower makes invalid UTF-8
// U+FFFD, which ValidEmail refuses).
func Key(e string) (string, bool) {
	n := Normalize(e)
	return n, sinktext.ValidEmail(n)
}
