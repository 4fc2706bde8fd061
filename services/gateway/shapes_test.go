package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Stripe sends objects the hub does not route on whose shapes break the
// rules of the routed kinds: an upcoming invoice has no id, balance objects
// have none, credits are negative. Refusing them would make Stripe retry for
// three days and then drop them, so they must be stored.
func TestUnroutedStripeShapesAreStored(t *testing.T) {
	h := startHub(t, nil)
	now := time.Now().Unix()
	envelope := func(id, typ, object string) []byte {
		return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2023-10-16","created":%d,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":%q,"data":{"object":%s}}`, id, now, typ, object))
	}
	accepted := []struct{ name, typ, object string }{
		{"upcoming invoice without id", "invoice.upcoming", `{"object":"invoice","customer":"cus_OnMHOpJU2HN6Xv","amount_due":1000,"currency":"usd","status":"draft","livemode":false}`},
		{"balance without id", "balance.available", `{"object":"balance","available":[{"amount":-120,"currency":"usd"}],"livemode":false}`},
		{"invoice item credit", "invoiceitem.created", `{"id":"ii_1O5cugGgdF1VjufL","object":"invoiceitem","amount":-500,"currency":"usd","customer":"cus_OnMHOpJU2HN6Xv","livemode":false}`},
		{"credit note", "credit_note.created", `{"id":"cn_1O5cugGgdF1VjufL","object":"credit_note","amount":1200,"currency":"usd","status":"issued","livemode":false}`},
	}
	for i, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			body := envelope(fmt.Sprintf("evt_shape0000000%d", i), c.typ, c.object)
			if got := h.post(t, body, sign(body, secret)); got.Status != 200 {
				t.Fatalf("%d %v", got.Status, got.Body)
			}
		})
	}
	refused := []struct{ name, typ, object, field string }{
		{"invoice without id outside invoice.upcoming", "invoice.paid", `{"object":"invoice","amount_paid":1000,"currency":"usd","status":"paid"}`, "data.object.id"},
		{"negative charge amount", "charge.refunded", `{"id":"ch_1NzlYeGgdF1VjufL","object":"charge","amount":-100,"currency":"usd","status":"succeeded"}`, "data.object.amount"},
		{"case variant of a routed key", "invoice.paid", `{"id":"in_1O00X6GgdF1VjufL","object":"invoice","status":"paid","Customer":"cus_attacker"}`, "data.object.customer"},
		{"case variant in an expanded customer", "invoice.paid", `{"id":"in_1O00X6GgdF1VjufL","object":"invoice","status":"paid","customer":{"id":"cus_a","ID":"cus_b"}}`, "data.object.customer.id"},
	}
	for i, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			body := envelope(fmt.Sprintf("evt_refused000000%d", i), c.typ, c.object)
			got := h.post(t, body, sign(body, secret))
			msg, _ := got.Body["error"].(map[string]any)["message"].(string)
			if got.Status != 422 || !strings.HasPrefix(msg, c.field+":") {
				t.Fatalf("%d %v, want 422 naming %s", got.Status, got.Body, c.field)
			}
		})
	}
	if n := h.streamMsgs(t); n != uint64(len(accepted)) {
		t.Fatalf("stream holds %d messages, want %d", n, len(accepted))
	}
}
