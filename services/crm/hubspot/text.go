package hubspot

import (
	"errors"

	"github.com/switchyard/switchyard/platform/sinktext"
)

// MaxPropertyValue is the longest value HubSpot stores in a text property
// (single-line and multi-line text alike: 65,536 characters when set
// through the CRM, HubSpot's knowledge base says). It is counted in UTF-16
// code units, which is never fewer than characters however HubSpot counts
// them, so a value within it is within HubSpot's limit.
const MaxPropertyValue = 65536

// ErrInvalidEmail is the per-input error of a contact whose email HubSpot
// would refuse or did refuse (INVALID_EMAIL): the email is the upsert key,
// so the contact cannot be written at all. Retrying cannot help; callers
// should record the outcome rather than dead-letter it. It is wrapped in a
// Permanent error.
var ErrInvalidEmail = errors.New("the email is not an address HubSpot accepts")

// PropertyValue is the one way a value enters a contact property: valid
// UTF-8 without NUL, other control characters or bidi and zero-width
// characters, one line (every property the hub writes is single-line
// text, a number or an option), cut to MaxPropertyValue with an ellipsis.
// HubSpot shows property values as text, so nothing else needs escaping.
func PropertyValue(s string) string {
	s, _ = sinktext.Truncate(sinktext.Line(s), MaxPropertyValue, sinktext.UTF16)
	return s
}
