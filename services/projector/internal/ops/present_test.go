package ops

import (
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/services/projector/internal/view"
)

func TestStateSeverity(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		state, want string
	}{
		{view.StatePaymentFailed + "2026-11-05", severityCritical},
		{view.StatePaymentFinal, severityCritical},
		{view.StatePaymentRetryDue + "2026-11-05", severityCritical},
		{view.KindRetryScheduled, severityCritical}, // the kinds the overview counts
		{view.KindRetryOverdue, severityCritical},
		{view.StateDisputeOpen, severityCritical},
		{view.StateCRMFailed, severityCritical},
		{view.StateTicketFailed, severityCritical},
		{view.StateProvisioning, severityWarning},
		{view.StateCRMPending, severityWarning},
		{view.StatePaymentReceived, severityOK},
		{view.StateTicketOpened, severityInfo},
		{view.StateCanceled, severityInfo},
		{view.StateNoActivity, severityInfo},
		{"a state added later", severityWarning},
	} {
		if got := stateSeverity(tt.state); got != tt.want {
			t.Errorf("stateSeverity(%q) = %s, want %s", tt.state, got, tt.want)
		}
	}
}

func TestStatesBySeverity(t *testing.T) {
	t.Parallel()
	got := statesBySeverity(map[string]int{view.StatePaymentReceived: 40, view.StateTicketOpened: 9, view.StateDisputeOpen: 1, "payment failed — retry scheduled": 3, view.StateCRMPending: 2})
	want := []stateCount{
		{"payment failed — retry scheduled", severityCritical, 3},
		{view.StateDisputeOpen, severityCritical, 1},
		{view.StateCRMPending, severityWarning, 2},
		{view.StatePaymentReceived, severityOK, 40},
		{view.StateTicketOpened, severityInfo, 9},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statesBySeverity = %v\nwant %v", got, want)
	}
}

func TestJaegerTraceURL(t *testing.T) {
	t.Parallel()
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tt := range []struct {
		name, ui, id, want string
	}{
		{"root", "http://jaeger.example:16686", id, "http://jaeger.example:16686/trace/" + id},
		{"under a path", "https://ops.example/jaeger", id, "https://ops.example/jaeger/trace/" + id},
		{"a trailing slash", "https://ops.example/jaeger/", id, "https://ops.example/jaeger/trace/" + id},
		{"the id escaped as one segment", "http://jaeger.example", "a/b?c#d", "http://jaeger.example/trace/a%2Fb%3Fc%23d"},
		{"no Jaeger", "", id, ""},
		{"no trace", "http://jaeger.example", "", ""},
		{"not a web address", "javascript:alert(1)", id, ""},
		{"no host", "/jaeger", id, ""},
	} {
		if got := jaegerTraceURL(tt.ui, tt.id); got != tt.want {
			t.Errorf("%s: jaegerTraceURL(%q, %q) = %q, want %q", tt.name, tt.ui, tt.id, got, tt.want)
		}
	}
}

func TestSummarizeWebhooks(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name         string
		results      map[string]int64
		want         []resultCount
		wantReceived int64
	}{
		{"none failed", map[string]int64{"accepted": 120, "duplicate": 3, "signature_invalid": 0, "payload_too_large": 0}, nil, 123},
		{"only the non-zero failures, most first", map[string]int64{"accepted": 120, "signature_invalid": 2, "invalid_json": 0, "store_unavailable": 5, "payload_too_large": 2},
			[]resultCount{{"store_unavailable", 5}, {"payload_too_large", 2}, {"signature_invalid", 2}}, 129},
		{"nothing received", map[string]int64{}, nil, 0},
	} {
		got := summarizeWebhooks(tt.results)
		if !reflect.DeepEqual(got.Failed, tt.want) || got.Received != tt.wantReceived {
			t.Errorf("%s: summarizeWebhooks = %+v; want %v, %d received", tt.name, got, tt.want, tt.wantReceived)
		}
	}
}

// The overview's webhook card lists only the failed results that
// happened, "none" when none did, and keeps the total.
func TestOverviewWebhookCard(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		results map[string]int64
		total   int64
		want    string
	}{
		{"none failed", map[string]int64{"accepted": 120, "duplicate": 2, "signature_invalid": 0, "payload_too_large": 0}, 0,
			`<span class="note" id="webhook-results">none; 122 received since the gateway started</span>`},
		{"some failed", map[string]int64{"accepted": 120, "signature_invalid": 3, "store_unavailable": 1, "payload_too_large": 0}, 4,
			`<span class="note" id="webhook-results">signature_invalid 3 · store_unavailable 1; 124 received since the gateway started</span>`},
	} {
		var b strings.Builder
		o := Overview{GatewayConfigured: true, WebhookResults: tt.results, WebhookFailures: tt.total}
		if err := consoleTmpl.ExecuteTemplate(&b, "overview", map[string]any{"Title": "Overview", "O": o}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tt.want) {
			i := strings.Index(b.String(), "Webhook failures")
			t.Errorf("%s: the card reads\n%.400s\nwant %s", tt.name, b.String()[i:], tt.want)
		}
	}
}
