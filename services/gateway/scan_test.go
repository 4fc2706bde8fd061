package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/testkit"
)

// referenceScan extracts the routed fields with encoding/json: the oracle the
// hand-written scanner must agree with on every input.
func referenceScan(body []byte) (rawEvent, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return rawEvent{}, false
	}
	ev := rawEvent{
		ID: top["id"], Object: top["object"], Type: top["type"], Created: top["created"],
		Livemode: top["livemode"], APIVersion: top["api_version"], Data: top["data"],
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(ev.Data, &data) == nil && data != nil {
		ev.DataObject = data["object"]
		var o map[string]json.RawMessage
		if json.Unmarshal(ev.DataObject, &o) == nil && o != nil {
			ev.Obj = rawObject{
				ID: o["id"], Object: o["object"], Livemode: o["livemode"], Customer: o["customer"],
				Email: o["email"], CustomerEmail: o["customer_email"], Currency: o["currency"], Status: o["status"],
				Amount: o["amount"], AmountPaid: o["amount_paid"], AmountDue: o["amount_due"],
				AmountRefunded: o["amount_refunded"], AmountTotal: o["amount_total"], AmountCaptured: o["amount_captured"],
			}
		}
	}
	return ev, true
}

func sameRaw(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func diffEvents(got, want rawEvent) string {
	pairs := []struct {
		name string
		a, b []byte
	}{
		{"id", got.ID, want.ID}, {"object", got.Object, want.Object}, {"type", got.Type, want.Type},
		{"created", got.Created, want.Created}, {"livemode", got.Livemode, want.Livemode},
		{"api_version", got.APIVersion, want.APIVersion}, {"data", got.Data, want.Data},
		{"data.object", got.DataObject, want.DataObject},
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
	got, err := scanEvent(body)
	want, ok := referenceScan(body)
	if (err == nil) != ok {
		t.Fatalf("scanEvent(%q) error = %v, encoding/json accepts = %v", body, err, ok)
	}
	if ok {
		if d := diffEvents(got, want); d != "" {
			t.Fatalf("scanEvent(%q) differs from encoding/json: %s", body, d)
		}
	}
}

func TestScanAgreesWithEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, `[]`, `"x"`, `1`, `null`, ``, ` `, `{`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`,
		`{"id":"evt_1","id":"evt_2"}`, `{"\u0069d":"evt_escaped"}`, `{"data":{"object":{"id":"cus_1"},"object":{"id":"cus_2"}}}`,
		`{"data":{"object":5}}`, `{"data":5}`, `{"data":{"object":{"email":"a\"b@c.d"}}}`, `{"a":"\x01"}`,
		`{"a":-0.5e+10}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":tru}`, `{"a":nulls}`, `{"a":"\u12G4"}`,
		`{"a":[1,[2,{"b":[]}]]}`, `{"a":[1,]}`, `{} {}`, "{\"a\":\"\xff\xfe\"}", `{"a":"\ud800"}`,
		`{"data":{"object":{"id":"cus_1"}},"data":null}`,
	}
	for _, name := range testkit.StripeEventNames(t) {
		cases = append(cases, string(testkit.StripeEvent(t, name)))
	}
	for _, c := range cases {
		checkAgainstReference(t, []byte(c))
	}
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		deep := `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		checkAgainstReference(t, []byte(deep))
	}
}

func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","data":{"object":{"id":"cus_1","amount":-1.5e3}}}`))
	f.Add([]byte(`{"\u0064ata":{"object":{"email":"x@y.z"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAgainstReference(t, body)
		// Validate must never panic, and accepted events satisfy the rules.
		if ev, err := Validate(body, PinnedAPIVersion); err == nil {
			if !isEventID(ev.ID) || !isEventType(ev.Type) || ev.Created <= 0 || !isObjectID(ev.ObjectID) {
				t.Fatalf("accepted invalid event %+v", ev)
			}
		}
	})
}
