package gateway

import (
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/platform/stripescan"
)

// Event is what the gateway learns from a verified webhook body: exactly the
// fields it routes and records on. The body itself is stored untouched.
type Event struct {
	ID         string
	Type       string
	Created    int64
	Livemode   bool
	APIVersion string
	ObjectID   string // empty only for objects Stripe sends without one (invoice.upcoming)
	ObjectKind string
}

// ValidationError says which routed field is wrong and why. Messages never
// contain field values, so they are safe to return and log.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// NotJSONError wraps a body that is not a single JSON object.
type NotJSONError struct{ Err error }

func (e *NotJSONError) Error() string { return "body is not a JSON object: " + e.Err.Error() }
func (e *NotJSONError) Unwrap() error { return e.Err }

// Field formats. Each is a tiny hand-written matcher (the regular expression
// it implements is in its comment and checked by TestMatchersAgreeWithRegexps):
// regexp matching was a fifth of validation time.
type matcher func(string) bool

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isLower(c) || isDigit(c) || c >= 'A' && c <= 'Z' }

func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// isEventID: ^evt_[A-Za-z0-9]{8,250}$
func isEventID(s string) bool {
	return len(s) >= 12 && len(s) <= 254 && s[:4] == "evt_" && all(s[4:], isAlnum)
}

// isEventType: ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,5}$
func isEventType(s string) bool {
	dots := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 0 || s[i-1] == '.':
			if !isLower(c) {
				return false
			}
		case c == '.':
			dots++
		case !isLower(c) && !isDigit(c) && c != '_':
			return false
		}
	}
	return dots >= 1 && dots <= 5 && s[len(s)-1] != '.'
}

// isAPIVersion: ^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[a-z]+)?$
func isAPIVersion(s string) bool {
	if len(s) < 10 || !all(s[0:4], isDigit) || s[4] != '-' || !all(s[5:7], isDigit) || s[7] != '-' || !all(s[8:10], isDigit) {
		return false
	}
	return len(s) == 10 || len(s) > 11 && s[10] == '.' && all(s[11:], isLower)
}

// isObjectID: ^[a-z]{1,10}_[A-Za-z0-9_]{1,250}$
func isObjectID(s string) bool {
	u := strings.IndexByte(s, '_')
	return u >= 1 && u <= 10 && all(s[:u], isLower) && len(s)-u-1 >= 1 && len(s)-u-1 <= 250 &&
		all(s[u+1:], func(c byte) bool { return isAlnum(c) || c == '_' })
}

// isObjectKind: ^[a-z][a-z_.]{0,63}$
func isObjectKind(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && isLower(s[0]) && all(s, func(c byte) bool { return isLower(c) || c == '_' || c == '.' })
}

// isCustomerID: ^cus_[A-Za-z0-9]{1,250}$
func isCustomerID(s string) bool {
	return len(s) >= 5 && len(s) <= 254 && s[:4] == "cus_" && all(s[4:], isAlnum)
}

// isCurrency: ^[a-z]{3}$
func isCurrency(s string) bool { return len(s) == 3 && all(s, isLower) }

// isStatus: ^[a-z][a-z_]{0,63}$
func isStatus(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && isLower(s[0]) && all(s, func(c byte) bool { return isLower(c) || c == '_' })
}

// kind describes an object the hub routes on, as of the pinned API version.
type kind struct {
	idPrefixes []string
	statuses   map[string]bool // nil: the object has no status
}

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// kinds lists, for API version 2023-10-16 (stripe-go v76), the id prefixes and
// status values of the objects the hub routes on. For events in any other API
// version only the formats are checked: a newer status must not get a genuine
// Stripe event rejected for three days of retries.
var kinds = map[string]kind{
	"customer":         {idPrefixes: []string{"cus_"}},
	"subscription":     {idPrefixes: []string{"sub_"}, statuses: set("incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused")},
	"invoice":          {idPrefixes: []string{"in_"}, statuses: set("draft", "open", "paid", "uncollectible", "void")},
	"charge":           {idPrefixes: []string{"ch_", "py_"}, statuses: set("succeeded", "pending", "failed")},
	"dispute":          {idPrefixes: []string{"dp_", "du_"}, statuses: set("warning_needs_response", "warning_under_review", "warning_closed", "needs_response", "under_review", "charge_refunded", "won", "lost")},
	"checkout.session": {idPrefixes: []string{"cs_"}, statuses: set("open", "complete", "expired")},
	"payment_intent":   {idPrefixes: []string{"pi_"}, statuses: set("requires_payment_method", "requires_confirmation", "requires_action", "processing", "requires_capture", "canceled", "succeeded")},
	"refund":           {idPrefixes: []string{"re_", "pyr_"}, statuses: set("pending", "requires_action", "succeeded", "failed", "canceled")},
}

// kindOfType maps an event type to the object kind its data.object must be,
// for the families the hub handles. Longest prefix wins.
func kindOfType(t string) string {
	switch {
	case strings.HasPrefix(t, "customer.subscription."):
		return "subscription"
	case strings.HasPrefix(t, "customer.") && strings.Count(t, ".") == 1:
		return "customer"
	case strings.HasPrefix(t, "invoice."):
		return "invoice"
	case strings.HasPrefix(t, "charge.dispute."):
		return "dispute"
	case strings.HasPrefix(t, "charge.refund."):
		return "refund"
	case strings.HasPrefix(t, "charge.") && strings.Count(t, ".") == 1:
		return "charge"
	case strings.HasPrefix(t, "checkout.session."):
		return "checkout.session"
	case strings.HasPrefix(t, "payment_intent."):
		return "payment_intent"
	}
	return ""
}

// caseVariant is the ValidationError for a key that is a routed field's
// only when letter case is folded (stripescan.VariantError); nil for any
// other err.
func caseVariant(err error) *ValidationError {
	var v *stripescan.VariantError
	if !errors.As(err, &v) {
		return nil
	}
	return &ValidationError{v.Field, "also appears under a key that differs only in letter case"}
}

// Validate parses body and checks every field the hub routes on. pinned is
// the API version whose object schema the hub knows.
func Validate(body []byte, pinned string) (Event, error) {
	raw, err := stripescan.Scan(body)
	if verr := caseVariant(err); verr != nil {
		return Event{}, verr
	}
	if err != nil {
		return Event{}, &NotJSONError{Err: err}
	}
	return check(&raw, pinned)
}

// check applies the routing rules to the raw fields found by stripescan.Scan:
// the event's envelope, then its data.object — what it is, whose, its
// money and its status. The first rule broken is the error.
func check(raw *stripescan.Event, pinned string) (Event, error) {
	ev, err := checkEnvelope(raw)
	if err != nil {
		return Event{}, err
	}
	if stripescan.IsNull(raw.DataObject) {
		return Event{}, &ValidationError{"data.object", "required"}
	}
	if raw.DataObject[0] != '{' {
		return Event{}, &ValidationError{"data.object", "must be an object"}
	}
	obj := &raw.Obj
	k, known, err := checkObjectIdentity(&ev, obj)
	if err != nil {
		return Event{}, err
	}
	if err := checkParties(obj); err != nil {
		return Event{}, err
	}
	if err := checkMoney(obj, known); err != nil {
		return Event{}, err
	}
	if err := checkStatus(obj.Status, ev, k, known, pinned); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// checkEnvelope checks the event's own fields.
func checkEnvelope(raw *stripescan.Event) (Event, error) {
	var ev Event
	var err error
	if ev.ID, err = str(raw.ID, "id", isEventID, "must be a Stripe event id (evt_…)"); err != nil {
		return Event{}, err
	}
	if obj, err := str(raw.Object, "object", nil, ""); err != nil || obj != "event" {
		return Event{}, &ValidationError{"object", `must be "event"`}
	}
	if ev.Type, err = str(raw.Type, "type", isEventType, "must be a Stripe event type such as invoice.paid"); err != nil {
		return Event{}, err
	}
	if ev.Created, err = integer(raw.Created, "created"); err != nil {
		return Event{}, err
	}
	if ev.Created <= 0 || ev.Created > 32_503_680_000 { // year 3000
		return Event{}, &ValidationError{"created", "outside any plausible Stripe event time"}
	}
	if ev.Livemode, err = boolean(raw.Livemode, "livemode"); err != nil {
		return Event{}, err
	}
	if ev.APIVersion, err = str(raw.APIVersion, "api_version", isAPIVersion, "must be an API version such as 2023-10-16"); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// checkObjectIdentity checks what data.object is — its kind, as the event
// type requires, and its id — and that its livemode agrees with the
// event's; it sets ev's ObjectKind and ObjectID and returns the kind's
// rules, known when the hub routes on that kind.
func checkObjectIdentity(ev *Event, obj *stripescan.Object) (k kind, known bool, err error) {
	if ev.ObjectKind, err = str(obj.Object, "data.object.object", isObjectKind, "must name the object kind"); err != nil {
		return kind{}, false, err
	}
	k, known = kinds[ev.ObjectKind]
	// Stripe sends some objects without an id: an upcoming invoice (it does
	// not exist yet) and balance-like objects. The id is required for the
	// kinds the hub routes on, and checked for format wherever it is present.
	if !stripescan.IsNull(obj.ID) || (known && ev.Type != "invoice.upcoming") {
		if ev.ObjectID, err = str(obj.ID, "data.object.id", isObjectID, "must be a Stripe object id"); err != nil {
			return kind{}, false, err
		}
	}
	if want := kindOfType(ev.Type); want != "" && want != ev.ObjectKind {
		return kind{}, false, &ValidationError{"data.object.object", fmt.Sprintf("must be %s for %s events", want, ev.Type)}
	}
	if !stripescan.IsNull(obj.Livemode) {
		lm, err := boolean(obj.Livemode, "data.object.livemode")
		if err != nil {
			return kind{}, false, err
		}
		if lm != ev.Livemode {
			return kind{}, false, &ValidationError{"data.object.livemode", "differs from the event's livemode"}
		}
	}
	if known && ev.ObjectID != "" && !hasAnyPrefix(ev.ObjectID, k.idPrefixes) {
		return kind{}, false, &ValidationError{"data.object.id", "has the wrong prefix for a " + ev.ObjectKind}
	}
	return k, known, nil
}

// checkParties checks whose the object is: its customer and email
// addresses, where present.
func checkParties(obj *stripescan.Object) error {
	if err := customer(obj.Customer); err != nil {
		return err
	}
	if err := email(obj.Email, "data.object.email"); err != nil {
		return err
	}
	return email(obj.CustomerEmail, "data.object.customer_email")
}

// checkMoney checks the currency and the amounts, where present: integers
// in minor units, never negative on the kinds the hub routes on (known).
func checkMoney(obj *stripescan.Object, known bool) error {
	if !stripescan.IsNull(obj.Currency) {
		if _, err := str(obj.Currency, "data.object.currency", isCurrency, "must be a lower-case ISO 4217 code"); err != nil {
			return err
		}
	}
	amounts := [...]struct {
		raw  []byte
		name string
	}{
		{obj.Amount, "data.object.amount"}, {obj.AmountPaid, "data.object.amount_paid"},
		{obj.AmountDue, "data.object.amount_due"}, {obj.AmountRefunded, "data.object.amount_refunded"},
		{obj.AmountTotal, "data.object.amount_total"}, {obj.AmountCaptured, "data.object.amount_captured"},
	}
	for _, f := range amounts {
		if stripescan.IsNull(f.raw) {
			continue
		}
		n, err := integer(f.raw, f.name)
		if err != nil {
			return err
		}
		// Credits make amounts negative on other kinds (invoice items,
		// credit notes, balance transactions); the routed kinds never are.
		if n < 0 && known {
			return &ValidationError{f.name, "must not be negative"}
		}
	}
	return nil
}

// checkStatus checks the status, where present: a status word, and for a
// known kind in the pinned API version one of the kind's statuses.
func checkStatus(raw []byte, ev Event, k kind, known bool, pinned string) error {
	if stripescan.IsNull(raw) {
		return nil
	}
	st, err := str(raw, "data.object.status", isStatus, "must be a status word")
	if err != nil {
		return err
	}
	if known && ev.APIVersion == pinned && k.statuses != nil && !k.statuses[st] {
		return &ValidationError{"data.object.status", "is not a " + ev.ObjectKind + " status in API version " + pinned}
	}
	return nil
}

func hasAnyPrefix(s string, ps []string) bool {
	for _, p := range ps {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// str decodes a required JSON string and checks it against re.
func str(raw []byte, field string, valid matcher, reason string) (string, error) {
	if stripescan.IsNull(raw) {
		return "", &ValidationError{field, "required"}
	}
	s, ok := stripescan.String(raw)
	if !ok {
		return "", &ValidationError{field, "must be a string"}
	}
	if valid != nil && !valid(s) {
		return "", &ValidationError{field, reason}
	}
	return s, nil
}

// integer decodes a required JSON integer (no fraction, no exponent).
func integer(raw []byte, field string) (int64, error) {
	if stripescan.IsNull(raw) {
		return 0, &ValidationError{field, "required"}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, &ValidationError{field, "must be an integer"}
	}
	return n, nil
}

func boolean(raw []byte, field string) (bool, error) {
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "", "null":
		return false, &ValidationError{field, "required"}
	}
	return false, &ValidationError{field, "must be true or false"}
}

// customer accepts null, a customer id, or an expanded customer object.
func customer(raw []byte) error {
	const field = "data.object.customer"
	if stripescan.IsNull(raw) {
		return nil
	}
	if raw[0] == '{' {
		id, err := stripescan.ObjectID(raw, field)
		if verr := caseVariant(err); verr != nil {
			return verr
		}
		if err != nil {
			return &ValidationError{field, "must be an object"}
		}
		raw = id
	}
	_, err := str(raw, field, isCustomerID, "must be a customer id (cus_…)")
	return err
}

func email(raw []byte, field string) error {
	if stripescan.IsNull(raw) {
		return nil
	}
	s, err := str(raw, field, nil, "")
	if err != nil {
		return err
	}
	if len(s) > 254 {
		return &ValidationError{field, "is longer than 254 characters"}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@'):], ".") {
		return &ValidationError{field, "must be a plain email address"}
	}
	return nil
}
