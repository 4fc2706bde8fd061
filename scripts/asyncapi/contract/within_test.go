package contract

import "testing"

func TestWithin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, filter string
		want            bool
	}{
		{"billing.payment.failed", "billing.>", true},
		{"billing.payment.failed", "billing.payment.failed", true},
		{"billing.payment.failed", "billing.*.failed", true},
		{"billing", "billing.>", false},
		{"billing.payment.failed", "crm.>", false},
		{"crm.contact.synced", "crm.contact.pending_retry", false},
		{"dlq.*", "dlq.>", true},
		{"dlq.*", "dlq.*", true},
		{"dlq.*", "dlq.crm", false},
		{"dlq.>", "dlq.*", false},
		{"dlq.a.b", "dlq.*", false},
	}
	for _, tt := range tests {
		if got := within(tt.pattern, tt.filter); got != tt.want {
			t.Errorf("within(%q, %q) = %v, want %v", tt.pattern, tt.filter, got, tt.want)
		}
	}
}
