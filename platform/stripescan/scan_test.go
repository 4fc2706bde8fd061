package stripescan

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// referenceEvent and referenceObject decode the routed fields the way
// stripe-go and every consumer do: encoding/json into structs, which matches
// keys case-insensitively and keeps the last duplicate.
type referenceEvent struct {
	ID         json.RawMessage `json:"id"`
	Object     json.RawMessage `json:"object"`
	Type       json.RawMessage `json:"type"`
	Created    json.RawMessage `json:"created"`
	Livemode   json.RawMessage `json:"livemode"`
	APIVersion json.RawMessage `json:"api_version"`
	Data       json.RawMessage `json:"data"`
}

type referenceObject struct {
	ID             json.RawMessage `json:"id"`
	Object         json.RawMessage `json:"object"`
	Livemode       json.RawMessage `json:"livemode"`
	Customer       json.RawMessage `json:"customer"`
	Email          json.RawMessage `json:"email"`
	CustomerEmail  json.RawMessage `json:"customer_email"`
	Currency       json.RawMessage `json:"currency"`
	Status         json.RawMessage `json:"status"`
	Amount         json.RawMessage `json:"amount"`
	AmountPaid     json.RawMessage `json:"amount_paid"`
	AmountDue      json.RawMessage `json:"amount_due"`
	AmountRefunded json.RawMessage `json:"amount_refunded"`
	AmountTotal    json.RawMessage `json:"amount_total"`
	AmountCaptured json.RawMessage `json:"amount_captured"`
}

// referenceScan is the oracle: what encoding/json accepts (ok) and reads.
// hasVariant reports a key that equals a routed field only when case is
// folded, which Scan must refuse rather than read differently.
func referenceScan(body []byte) (ev Event, ok, hasVariant bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return Event{}, false, false
	}
	var r referenceEvent
	_ = json.Unmarshal(body, &r)
	ev = Event{ID: r.ID, Object: r.Object, Type: r.Type, Created: r.Created, Livemode: r.Livemode, APIVersion: r.APIVersion}
	hasVariant = variantIn(top, eventKeys)
	var data map[string]json.RawMessage
	if json.Unmarshal(r.Data, &data) == nil && data != nil {
		hasVariant = hasVariant || variantIn(data, dataKeys)
		var d struct {
			Object             json.RawMessage `json:"object"`
			PreviousAttributes json.RawMessage `json:"previous_attributes"`
		}
		_ = json.Unmarshal(r.Data, &d)
		ev.DataObject, ev.PreviousAttributes = d.Object, d.PreviousAttributes
		var o map[string]json.RawMessage
		if json.Unmarshal(d.Object, &o) == nil && o != nil {
			hasVariant = hasVariant || variantIn(o, objectKeys)
			var x referenceObject
			_ = json.Unmarshal(d.Object, &x)
			ev.Obj = Object{
				ID: x.ID, Object: x.Object, Livemode: x.Livemode, Customer: x.Customer,
				Email: x.Email, CustomerEmail: x.CustomerEmail, Currency: x.Currency, Status: x.Status,
				Amount: x.Amount, AmountPaid: x.AmountPaid, AmountDue: x.AmountDue,
				AmountRefunded: x.AmountRefunded, AmountTotal: x.AmountTotal, AmountCaptured: x.AmountCaptured,
			}
		}
	}
	return ev, true, hasVariant
}

func variantIn(m map[string]json.RawMessage, routed []string) bool {
	for k := range m {
		for _, r := range routed {
			if k != r && strings.EqualFold(k, r) {
				return true
			}
		}
	}
	return false
}

func sameRaw(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func diffEvents(got, want Event) string {
	pairs := []struct {
		name string
		a, b []byte
	}{
		{"id", got.ID, want.ID}, {"object", got.Object, want.Object}, {"type", got.Type, want.Type},
		{"created", got.Created, want.Created}, {"livemode", got.Livemode, want.Livemode},
		{"api_version", got.APIVersion, want.APIVersion},
		{"data.object", got.DataObject, want.DataObject},
		{"data.previous_attributes", got.PreviousAttributes, want.PreviousAttributes},
		{"obj.id", got.Obj.ID, want.Obj.ID}, {"obj.object", got.Obj.Object, want.Obj.Object},
		{"obj.livemode", got.Obj.Livemode, want.Obj.Livemode}, {"obj.customer", got.Obj.Customer, want.Obj.Customer},
		{"obj.email", got.Obj.Email, want.Obj.Email}, {"obj.customer_email", got.Obj.CustomerEmail, want.Obj.CustomerEmail},
		{"obj.currency", got.Obj.Currency, want.Obj.Currency}, {"obj.status", got.Obj.Status, want.Obj.Status},
		{"obj.amount", got.Obj.Amount, want.Obj.Amount}, {"obj.amount_paid", got.Obj.AmountPaid, want.Obj.AmountPaid},
		{"obj.amount_due", got.Obj.AmountDue, want.Obj.AmountDue}, {"obj.amount_refunded", got.Obj.AmountRefunded, want.Obj.AmountRefunded},
		{"obj.amount_total", got.Obj.AmountTotal, want.Obj.AmountTotal}, {"obj.amount_captured", got.Obj.AmountCaptured, want.Obj.AmountCaptured},
	}
	var out []string
	for _, p := range pairs {
		if !sameRaw(p.a, p.b) {
			out = append(out, p.name+": got "+string(p.a)+" want "+string(p.b))
		}
	}
	return strings.Join(out, "; ")
}

func checkAgainstReference(t *testing.T, body []byte) {
	t.Helper()
	got, err := Scan(body)
	want, ok, variant := referenceScan(body)
	var verr *VariantError
	if errors.As(err, &verr) {
		if !ok || !variant {
			t.Fatalf("Scan(%q) refused a case variant (%v) that encoding/json does not see", body, err)
		}
		return
	}
	if (err == nil) != ok {
		t.Fatalf("Scan(%q) error = %v, encoding/json accepts = %v", body, err, ok)
	}
	if ok && variant {
		t.Fatalf("Scan(%q) accepted a key that differs from a routed field only in case", body)
	}
	if ok {
		if d := diffEvents(got, want); d != "" {
			t.Fatalf("Scan(%q) differs from encoding/json: %s", body, d)
		}
	}
}

// tableCases are bodies that probe the reader's edges: syntax, duplicates,
// escapes, depth, case variants.
var tableCases = []string{
	`{}`, `[]`, `"x"`, `1`, `null`, ``, ` `, `{`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`,
	`{"id":"evt_1","id":"evt_2"}`, `{"\u0069d":"evt_escaped"}`, `{"data":{"object":{"id":"cus_1"},"object":{"id":"cus_2"}}}`,
	`{"data":{"object":5}}`, `{"data":5}`, `{"data":{"object":{"email":"a\"b@c.d"}}}`, `{"a":"\x01"}`,
	`{"a":-0.5e+10}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":tru}`, `{"a":nulls}`, `{"a":"\u12G4"}`,
	`{"a":[1,[2,{"b":[]}]]}`, `{"a":[1,]}`, `{} {}`, "{\"a\":\"\xff\xfe\"}", `{"a":"\ud800"}`,
	`{"data":{"object":{"id":"cus_1"}},"data":null}`,
	`{"id":"evt_A","ID":"evt_B"}`, `{"Type":"x"}`, `{"data":{"Object":{}}}`, `{"data":{"object":{"Customer":"cus_1"}}}`,
	`{"data":{"object":{"ſtatus":"paid"}}}`, `{"iD":1}`, `{"DATA":5,"data":{}}`, `{"Id2":1,"OBJECT_x":2}`,
	`{"data":{"previous_attributes":{"email":"a@b.c"},"object":{}}}`,
	`{"data":{"previous_attributes":1,"previous_attributes":null}}`, `{"data":{"Previous_Attributes":{}}}`,
}

func TestScanAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range tableCases {
		checkAgainstReference(t, []byte(c))
	}
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		deep := `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		checkAgainstReference(t, []byte(deep))
	}
}

func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","data":{"object":{"id":"cus_1","amount":-1.5e3}}}`))
	f.Add([]byte(`{"\u0064ata":{"object":{"email":"x@y.z"},"previous_attributes":{"email":null}}}`))
	for _, c := range tableCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAgainstReference(t, body)
		// String decodes every routed value as encoding/json does.
		if ev, err := Scan(body); err == nil {
			for _, v := range [][]byte{ev.ID, ev.Type, ev.APIVersion, ev.Obj.ID, ev.Obj.Email, ev.Obj.Status} {
				checkString(t, v)
			}
		}
	})
}

// checkString holds String to encoding/json's decoding of v into a string.
func checkString(t *testing.T, v []byte) {
	t.Helper()
	got, ok := String(v)
	var want string
	wantOK := len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &want) == nil
	if ok != wantOK || got != want {
		t.Fatalf("String(%q) = %q, %v; encoding/json: %q, %v", v, got, ok, want, wantOK)
	}
}

func TestStringDecodesAsEncodingJSON(t *testing.T) {
	for _, v := range []string{`"plain"`, `"a\"b"`, `"\u00e9t\u00e9"`, "\"\xff\xfe\"", `"\ud800"`, `""`, `null`, `1`, `{}`, `[]`, `true`, ``} {
		checkString(t, []byte(v))
	}
}

func TestObjectIDRefusesACaseVariant(t *testing.T) {
	id, err := ObjectID([]byte(`{"id":"cus_1","email":"a@b.c"}`), "data.object.customer")
	if err != nil || string(id) != `"cus_1"` {
		t.Fatalf("ObjectID = %s, %v", id, err)
	}
	_, err = ObjectID([]byte(`{"id":"cus_1","ID":"cus_2"}`), "data.object.customer")
	var v *VariantError
	if !errors.As(err, &v) || v.Field != "data.object.customer.id" {
		t.Fatalf("a case variant of id: %v, want a VariantError naming data.object.customer.id", err)
	}
	if _, err := ObjectID([]byte(`"cus_1"`), "x"); !errors.Is(err, ErrNotObject) {
		t.Fatalf("a string: %v, want ErrNotObject", err)
	}
}
