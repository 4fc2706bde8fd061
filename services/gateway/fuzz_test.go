package gateway

import (
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

// FuzzValidate: Validate never panics on arbitrary bytes, and what it
// accepts satisfies the routing rules. (The scanner underneath is held to
// encoding/json's verdicts by platform/stripescan's fuzz test.)
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","data":{"object":{"id":"cus_1","amount":-1.5e3}}}`))
	f.Add([]byte(`{"\u0064ata":{"object":{"email":"x@y.z"}}}`))
	for _, name := range testkit.StripeEventNames(f) {
		f.Add(testkit.StripeEvent(f, name))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if ev, err := Validate(body, PinnedAPIVersion); err == nil {
			if !isEventID(ev.ID) || !isEventType(ev.Type) || ev.Created <= 0 || !isObjectID(ev.ObjectID) {
				t.Fatalf("accepted invalid event %+v", ev)
			}
		}
	})
}
