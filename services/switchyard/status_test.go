package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/services/projector/client"
)

// switchyard status shows what happened, not every counter there is: only
// non-zero webhook results, ticket latency from receipt in readable units,
// and no latency figure when no ticket was timed.
func TestStatusPrintsWhatHappened(t *testing.T) {
	for _, tc := range []struct {
		name      string
		o         client.Overview
		want, not []string
	}{
		{"counts and a timed ticket", client.Overview{
			WebhookResults: map[string]int64{"accepted": 7, "duplicate": 0, "signature_invalid": 0, "invalid_json": 2}, WebhookFailures: 2,
			Tickets24h: 2, TicketsTimed: 2, TicketLatencyP50: 0.034, TicketLatencyP95: 2.5},
			[]string{"webhooks:       accepted 7, invalid_json 2 (failures 2)", "latency from receipt p50 34ms, p95 2.5s"},
			[]string{"duplicate 0", "signature_invalid"}},
		{"nothing timed", client.Overview{WebhookResults: map[string]int64{"accepted": 0}, Tickets24h: 1},
			[]string{"webhooks:       none (failures 0)", "latency not known (no ticket timed)"},
			[]string{"p50"}},
	} {
		var out bytes.Buffer
		printStatus(&out, tc.o)
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: status lacks %q:\n%s", tc.name, w, out.String())
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out.String(), n) {
				t.Errorf("%s: status shows %q:\n%s", tc.name, n, out.String())
			}
		}
	}
}
