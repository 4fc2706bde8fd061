package stripescan_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/stripescan"
)

// TestScanReadsEveryRecordedEvent: on each of Stripe's recorded events the
// one-pass reader finds the values encoding/json finds. (The reader's own
// tests hold it to encoding/json on arbitrary input; these are the shapes
// the hub actually receives.)
func TestScanReadsEveryRecordedEvent(t *testing.T) {
	for _, name := range testkit.StripeEventNames(t) {
		body := testkit.StripeEvent(t, name)
		got, err := stripescan.Scan(body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		top := members(t, body)
		data := members(t, top["data"])
		obj := members(t, data["object"])
		for _, c := range []struct {
			field     string
			got, want []byte
		}{
			{"id", got.ID, top["id"]}, {"type", got.Type, top["type"]}, {"created", got.Created, top["created"]},
			{"livemode", got.Livemode, top["livemode"]}, {"api_version", got.APIVersion, top["api_version"]},
			{"data.object", got.DataObject, data["object"]},
			{"data.previous_attributes", got.PreviousAttributes, data["previous_attributes"]},
			{"data.object.id", got.Obj.ID, obj["id"]}, {"data.object.object", got.Obj.Object, obj["object"]},
			{"data.object.livemode", got.Obj.Livemode, obj["livemode"]}, {"data.object.customer", got.Obj.Customer, obj["customer"]},
			{"data.object.email", got.Obj.Email, obj["email"]}, {"data.object.customer_email", got.Obj.CustomerEmail, obj["customer_email"]},
			{"data.object.currency", got.Obj.Currency, obj["currency"]}, {"data.object.status", got.Obj.Status, obj["status"]},
			{"data.object.amount", got.Obj.Amount, obj["amount"]}, {"data.object.amount_paid", got.Obj.AmountPaid, obj["amount_paid"]},
			{"data.object.amount_due", got.Obj.AmountDue, obj["amount_due"]}, {"data.object.amount_refunded", got.Obj.AmountRefunded, obj["amount_refunded"]},
			{"data.object.amount_total", got.Obj.AmountTotal, obj["amount_total"]}, {"data.object.amount_captured", got.Obj.AmountCaptured, obj["amount_captured"]},
		} {
			if !bytes.Equal(c.got, c.want) {
				t.Errorf("%s: %s = %.60s, encoding/json reads %.60s", name, c.field, c.got, c.want)
			}
		}
		if s, ok := stripescan.String(got.Type); !ok || !strings.HasPrefix(name, s) { // fixtures are named type[.case]
			t.Errorf("%s: type decodes to %q, %v", name, s, ok)
		}
	}
}

func members(t *testing.T, raw []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%.40s: %v", raw, err)
	}
	return m
}
