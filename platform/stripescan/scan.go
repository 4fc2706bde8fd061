// Package stripescan reads a Stripe event's routed fields in one pass over
// its bytes: it checks that the whole document is valid JSON (RFC 8259, as
// strict as encoding/json's json.Valid) and keeps the raw bytes of just the
// fields the hub routes on. encoding/json did the same job at about a third
// of the gateway's CPU under load, and half of identity's, because it
// allocates and decodes every field of the event (and identity validated
// the body again for each struct it decoded). The fuzz test holds this
// reader to encoding/json's verdicts and values on arbitrary input.
//
// Keys that equal a routed field only when letter case is folded ("ID",
// "Type") are refused with a *VariantError: encoding/json, and so
// stripe-go, would read them as the field, so an event carrying both "id"
// and "ID" would mean one thing here and another there.
package stripescan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Event holds the raw JSON values of the routed fields; nil = absent.
// Duplicate keys resolve to the last occurrence, as encoding/json decodes
// them into raw values (and stripe-go a duplicated "data"; encoding/json
// would merge duplicated objects decoded into maps or structs).
type Event struct {
	ID, Object, Type, Created, Livemode, APIVersion []byte
	// DataObject is the raw "data"."object" value, when data is an object.
	DataObject []byte
	// PreviousAttributes is the raw "data"."previous_attributes" value,
	// when data is an object.
	PreviousAttributes []byte
	// Obj holds data.object's routed fields, when it is an object.
	Obj Object
}

// Object holds the routed fields of data.object.
type Object struct {
	ID, Object, Livemode, Customer, Email, CustomerEmail, Currency, Status     []byte
	Amount, AmountPaid, AmountDue, AmountRefunded, AmountTotal, AmountCaptured []byte
}

// VariantError reports a key that equals the routed Field only when letter
// case is folded.
type VariantError struct{ Field string }

func (e *VariantError) Error() string {
	return e.Field + " also appears under a key that differs only in letter case"
}

// ErrNotObject is Scan's error for a valid JSON document that is not an
// object, and ObjectID's for a value that is not one.
var ErrNotObject = errors.New("not an object")

func (o *Object) slot(key []byte) *[]byte {
	switch string(key) {
	case "id":
		return &o.ID
	case "object":
		return &o.Object
	case "livemode":
		return &o.Livemode
	case "customer":
		return &o.Customer
	case "email":
		return &o.Email
	case "customer_email":
		return &o.CustomerEmail
	case "currency":
		return &o.Currency
	case "status":
		return &o.Status
	case "amount":
		return &o.Amount
	case "amount_paid":
		return &o.AmountPaid
	case "amount_due":
		return &o.AmountDue
	case "amount_refunded":
		return &o.AmountRefunded
	case "amount_total":
		return &o.AmountTotal
	case "amount_captured":
		return &o.AmountCaptured
	}
	return nil
}

func (e *Event) slot(key []byte) *[]byte {
	switch string(key) {
	case "id":
		return &e.ID
	case "object":
		return &e.Object
	case "type":
		return &e.Type
	case "created":
		return &e.Created
	case "livemode":
		return &e.Livemode
	case "api_version":
		return &e.APIVersion
	case "data": // read by Scan itself; the slot only marks it as routed
		return &e.DataObject
	}
	return nil
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

type scanner struct {
	b     []byte
	i     int
	depth int
	// variant is the first routed field found under a key that equals its
	// name only when letter case is folded ("ID", "Type"): encoding/json, and
	// so stripe-go and every consumer, would read that key as the field.
	variant string
}

// noteVariant records key if it folds to one of routed without equalling it.
func (s *scanner) noteVariant(key []byte, prefix string, routed []string) {
	if s.variant != "" {
		return
	}
	plain := true // lower-case ASCII keys can only match exactly
	for _, c := range key {
		if c >= 'A' && c <= 'Z' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return
	}
	for _, r := range routed {
		if strings.EqualFold(string(key), r) {
			s.variant = prefix + r
			return
		}
	}
}

var (
	eventKeys  = []string{"id", "object", "type", "created", "livemode", "api_version", "data"}
	dataKeys   = []string{"object", "previous_attributes"}
	objectKeys = []string{"id", "object", "livemode", "customer", "email", "customer_email", "currency", "status",
		"amount", "amount_paid", "amount_due", "amount_refunded", "amount_total", "amount_captured"}
)

// SyntaxError reports where body stops being JSON.
type SyntaxError struct {
	msg string
	off int
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at offset %d", e.msg, e.off) }

func (s *scanner) fail(msg string) error { return &SyntaxError{msg, s.i} }

// Scan validates body and extracts the routed fields. Its errors: a
// *SyntaxError when body is not JSON, ErrNotObject, or a *VariantError.
func Scan(body []byte) (Event, error) {
	var ev Event
	s := scanner{b: body}
	s.ws()
	if s.i >= len(s.b) {
		return ev, s.fail("unexpected end of input")
	}
	if s.b[s.i] != '{' {
		if err := s.value(); err != nil {
			return ev, err
		}
		if err := s.end(); err != nil {
			return ev, err
		}
		return ev, ErrNotObject
	}
	err := s.object(func(key []byte) error {
		slot := ev.slot(key)
		if slot == nil {
			s.noteVariant(key, "", eventKeys)
			return s.value()
		}
		if string(key) != "data" {
			return s.capture(slot)
		}
		if s.b[s.i] != '{' {
			ev.DataObject, ev.PreviousAttributes, ev.Obj = nil, nil, Object{}
			return s.value()
		}
		var obj, prev []byte
		var fields Object
		err := s.object(func(key []byte) error {
			switch string(key) {
			case "object":
			case "previous_attributes":
				return s.capture(&prev)
			default:
				s.noteVariant(key, "data.", dataKeys)
				return s.value()
			}
			vstart := s.i
			if s.b[s.i] != '{' {
				fields = Object{}
				err := s.value()
				obj = s.b[vstart:s.i]
				return err
			}
			fields = Object{}
			err := s.object(func(key []byte) error {
				if slot := fields.slot(key); slot != nil {
					return s.capture(slot)
				}
				s.noteVariant(key, "data.object.", objectKeys)
				return s.value()
			})
			obj = s.b[vstart:s.i]
			return err
		})
		ev.DataObject, ev.PreviousAttributes, ev.Obj = obj, prev, fields
		return err
	})
	if err != nil {
		return Event{}, err
	}
	if err := s.end(); err != nil {
		return Event{}, err
	}
	if ev.DataObject != nil && ev.DataObject[0] != '{' {
		ev.Obj = Object{}
	}
	if s.variant != "" {
		return ev, &VariantError{s.variant}
	}
	return ev, nil
}

// ObjectID returns the raw "id" of the JSON object raw (already validated
// by Scan), refusing an "ID"-style variant (a *VariantError naming
// field.id) for the same reason as Scan.
func ObjectID(raw []byte, field string) ([]byte, error) {
	s := scanner{b: raw}
	var id []byte
	if err := s.object(func(key []byte) error {
		if string(key) == "id" {
			return s.capture(&id)
		}
		s.noteVariant(key, field+".", []string{"id"})
		return s.value()
	}); err != nil {
		return nil, ErrNotObject
	}
	if s.variant != "" {
		return nil, &VariantError{s.variant}
	}
	return id, nil
}

// IsNull reports whether the raw JSON value v is absent or null.
func IsNull(v []byte) bool { return len(v) == 0 || string(v) == "null" }

// String is the string the raw JSON value v holds (as encoding/json decodes
// it: escapes resolved, invalid UTF-8 replaced); ok is false for any other
// value, absent or null. v must have been validated by Scan.
func String(v []byte) (s string, ok bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if inner := v[1 : len(v)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true // the scanner already checked the string's syntax
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.fail("invalid character after top-level value")
	}
	return nil
}

func (s *scanner) capture(slot *[]byte) error {
	start := s.i
	if err := s.value(); err != nil {
		return err
	}
	*slot = s.b[start:s.i]
	return nil
}

// wsByte[c] is true for JSON whitespace. Stripe pretty-prints its webhook
// bodies, so skipping indentation is a large share of the scan.
var wsByte = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func (s *scanner) ws() {
	b, i := s.b, s.i
	for i < len(b) && wsByte[b[i]] {
		i++
	}
	s.i = i
}

// object reads an object at s.i, calling member with s.i at each value
// (after leading whitespace); member must consume exactly that value. A nil
// member skips every value.
func (s *scanner) object(member func(key []byte) error) error {
	s.depth++
	if s.depth > maxDepth {
		return s.fail("exceeded max depth")
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("expected string for object key")
		}
		start := s.i
		escaped, err := s.string()
		if err != nil {
			return err
		}
		key := s.b[start+1 : s.i-1]
		if escaped { // rare: "\u0069d" is the key "id"
			var k string
			if err := json.Unmarshal(s.b[start:s.i], &k); err != nil {
				return s.fail("invalid object key")
			}
			key = []byte(k)
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("expected ':' after object key")
		}
		s.i++
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
		if member == nil {
			err = s.value()
		} else {
			err = member(key)
		}
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or '}' after object value")
		}
	}
}

// value reads any JSON value at s.i.
func (s *scanner) value() error {
	if s.i >= len(s.b) {
		return s.fail("unexpected end of input")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(nil)
	case c == '[':
		return s.array()
	case c == '"':
		_, err := s.string()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.fail("invalid character looking for beginning of value")
}

func (s *scanner) array() error {
	s.depth++
	if s.depth > maxDepth {
		return s.fail("exceeded max depth")
	}
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.ws()
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.fail("unexpected end of input")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return s.fail("expected ',' or ']' after array element")
		}
	}
}

// plainByte[c] is true for bytes that may appear unescaped inside a string
// and need no further look: everything but '"', '\\' and control characters.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// string reads a string at s.i (which is '"') and reports whether it had escapes.
func (s *scanner) string() (escaped bool, err error) {
	s.i++
	for {
		b, i := s.b, s.i
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		s.i = i
		if i >= len(b) {
			return escaped, s.fail("unexpected end of input in string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(b) {
				return escaped, s.fail("unexpected end of input")
			}
			switch b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for k := 0; k < 4; k++ {
					if s.i >= len(b) || !isHex(b[s.i]) {
						return escaped, s.fail("invalid \\u escape")
					}
					s.i++
				}
			default:
				return escaped, s.fail("invalid escape in string")
			}
		default:
			return escaped, s.fail("control character in string")
		}
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return s.fail("unexpected end of input in number")
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
		}
	default:
		return s.fail("invalid character in number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if !s.digits() {
			return s.fail("expected digit after decimal point")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return s.fail("expected digit in exponent")
		}
	}
	return nil
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("invalid literal")
	}
	s.i += len(lit)
	return nil
}
