//go:build !nodev

package main

import (
	"encoding/json"
	"errors"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit/fixtures"
)

// The event templates trigger makes events from: the hub's Stripe event
// fixtures, one per event type it handles (a development build links them).

var errNoTriggerTemplates = errors.New("this build has no event templates") // not in development builds

func triggerEventNames() []string { return fixtures.StripeEventNames() }

func triggerTemplate(name string) ([]byte, bool) { return fixtures.StripeEvent(name) }

// triggerObjects are the fixture objects by id that the Stripe API
// emulator stores (stripeapi.Serves): the objects of stripe/objects and
// every event's data.object. Of an object carried by several, the earliest
// version: a fresh event starts a fresh story (an invoice.paid names an
// active subscription, not the one a later deletion ended). trigger
// registers renewed copies of those a fresh event names.
func triggerObjects() map[string][]byte {
	out := map[string][]byte{}
	created := map[string]int64{}
	add := func(raw []byte, when int64) {
		var head struct{ ID, Object string }
		if json.Unmarshal(raw, &head) != nil || head.ID == "" || !stripeapi.Serves(head.Object) {
			return
		}
		if c, ok := created[head.ID]; ok && c <= when {
			return
		}
		out[head.ID], created[head.ID] = raw, when
	}
	objects, _ := fixtures.StripeObjects() // embedded: cannot fail in a working build
	for _, f := range objects {
		add(f.Data, 0)
	}
	events, _ := fixtures.StripeEvents()
	for _, f := range events {
		var ev struct {
			Created int64
			Data    struct{ Object json.RawMessage }
		}
		if json.Unmarshal(f.Data, &ev) == nil {
			add(ev.Data.Object, ev.Created)
		}
	}
	return out
}
