package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ticketRule names the support rule an event opens a ticket by (the
// ticket's tag), empty for none.
type event struct {
	id         string
	body       []byte
	typ        string
	ticketRule string
}

// lifecycles makes customers' Stripe events from the fixtures: each
// customer has its own Stripe ids and email, and its events come in the
// order Stripe sends them.
type lifecycles struct {
	tag       string
	templates map[string]map[string]any
}

// The lifecycle's event types, and the support rule each opens a ticket by.
var lifecycleTypes = map[string]string{
	"customer.created":              "",
	"customer.subscription.created": "",
	"invoice.payment_failed":        "payment_failed",
	"invoice.paid":                  "",
	"charge.refunded":               "refund",
	"customer.subscription.deleted": "cancellation",
	"charge.dispute.created":        "chargeback",
}

func newLifecycles(dir, tag string) (*lifecycles, error) {
	g := &lifecycles{tag: tag, templates: map[string]map[string]any{}}
	for typ := range lifecycleTypes {
		raw, err := os.ReadFile(filepath.Join(dir, typ+".json"))
		if err != nil {
			return nil, fmt.Errorf("fixture (run from the repository root, or set -fixtures): %w", err)
		}
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("fixture %s: %w", typ, err)
		}
		g.templates[typ] = ev
	}
	// The fixture's customer has no email yet; the soak's do, so that crm
	// syncs each one. The refunded charge is the customer's.
	object(g.templates["customer.created"])["email"] = "jenny.rosen@example.com"
	object(g.templates["charge.refunded"])["customer"] = object(g.templates["customer.created"])["id"]
	return g, nil
}

func object(ev map[string]any) map[string]any {
	return ev["data"].(map[string]any)["object"].(map[string]any)
}

// customer returns the events of customer n in Stripe's order: every
// customer is created, subscribes and pays; one in five has a payment fail
// first, one in ten is refunded, one in twenty cancels, and one in fifty of
// the refunded disputes the charge.
func (g *lifecycles) customer(n int) []event {
	types := []string{"customer.created", "customer.subscription.created"}
	if n%5 == 0 {
		types = append(types, "invoice.payment_failed")
	}
	types = append(types, "invoice.paid")
	if n%10 == 3 {
		types = append(types, "charge.refunded")
		if n%50 == 3 {
			types = append(types, "charge.dispute.created")
		}
	}
	if n%20 == 7 {
		types = append(types, "customer.subscription.deleted")
	}
	suffix := fmt.Sprintf("%s%08d", g.tag, n)
	out := make([]event, 0, len(types))
	for k, typ := range types {
		ev := rewrite(g.templates[typ], suffix).(map[string]any)
		id := fmt.Sprintf("evt_soak%d%s", k, suffix)
		ev["id"] = id
		body, err := json.Marshal(ev)
		if err != nil {
			panic(err) // a decoded fixture always encodes
		}
		out = append(out, event{id: id, body: body, typ: typ, ticketRule: lifecycleTypes[typ]})
	}
	return out
}

// rewrite copies v, giving every Stripe object id and email the customer's
// suffix so that customers never share an object. Prices and products
// (the catalogue) stay shared.
func rewrite(v any, suffix string) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = rewrite(e, suffix)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = rewrite(e, suffix)
		}
		return s
	case string:
		for _, p := range []string{"cus_", "in_", "ch_", "pi_", "sub_", "si_", "il_", "dp_", "re_"} {
			if strings.HasPrefix(x, p) {
				return x + suffix
			}
		}
		if at := strings.IndexByte(x, '@'); at > 0 {
			return x[:at] + "+" + suffix + x[at:]
		}
		return x
	}
	return v
}

// randomTag is 6 random lower-case letters: this run's ids differ from any
// other's.
func randomTag() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}
