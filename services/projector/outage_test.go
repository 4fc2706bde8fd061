package projector_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	crmv1 "github.com/switchyard/switchyard/proto/gen/switchyard/crm/v1"
)

// TestOverviewShowsAVendorOutage: CRM retries in the last minutes with no
// contact synced since are a problem on the overview (the console and
// switchyard status) while they last, and the problem clears once a
// contact syncs again.
func TestOverviewShowsAVendorOutage(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	now := time.Now()
	h.publish(t, msg(t, &crmv1.ContactSynced{EventId: "synced-1", CanonicalCustomerId: "cust_a", SourceEventId: "b1", OccurredAt: timestamppb.New(now.Add(-4 * time.Minute)),
		ContactId: "hs_a", Attempt: 1, Provider: "hubspot"}, "synced-1", "4bf92f3577b34da6a3ce929d0e0e4736"))
	for i, id := range []string{"retry-1", "retry-2", "retry-3"} {
		h.publish(t, msg(t, &crmv1.ContactPendingRetry{EventId: id, CanonicalCustomerId: "cust_b", SourceEventId: "b2", OccurredAt: timestamppb.New(now.Add(time.Duration(i-3) * time.Minute)),
			Attempt: uint32(i + 1), Provider: "hubspot", Reason: "HubSpot answered 503"}, id, "5bf92f3577b34da6a3ce929d0e0e4736"))
	}
	testkit.WaitFor(t, 20*time.Second, "projected", h.settled(t))
	problems := func() []string {
		code, body := h.get(t, "/v1/status", readToken)
		var o struct {
			Problems []string `json:"problems"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &o) != nil {
			t.Fatalf("status: %d %s", code, body)
		}
		return o.Problems
	}
	outage := func(ps []string) bool {
		for _, p := range ps {
			if strings.Contains(p, "CRM sync is failing: 3 retries in the last 5 minutes and no contact synced since") {
				return true
			}
		}
		return false
	}
	if ps := problems(); !outage(ps) {
		t.Fatalf("problems during the outage: %q", ps)
	}
	h.publish(t, msg(t, &crmv1.ContactSynced{EventId: "synced-2", CanonicalCustomerId: "cust_b", SourceEventId: "b2", OccurredAt: timestamppb.Now(),
		ContactId: "hs_b", Attempt: 4, Provider: "hubspot"}, "synced-2", "6bf92f3577b34da6a3ce929d0e0e4736"))
	testkit.WaitFor(t, 20*time.Second, "the outage problem cleared once a contact synced", func() bool { return !outage(problems()) })
}
