package identity_test

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/services/identity"
)

// TestLoadConfigStripeAPIBase: a STRIPE_API_BASE that is not an http(s)
// URL stops identity at start-up, naming the variable, instead of failing
// every refetch as if Stripe were unreachable.
func TestLoadConfigStripeAPIBase(t *testing.T) {
	tests := []struct {
		name, base string
		wantErr    bool
	}{
		{"unset: Stripe itself", "", false},
		{"emulator", "http://127.0.0.1:12111", false},
		{"https with a path", "https://stripe.internal/proxy", false},
		{"no scheme", "localhost:12111", true},
		{"no host", "http://", true},
		{"another scheme", "ftp://127.0.0.1:12111", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := identity.LoadConfig(config.MapEnv(map[string]string{
				"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/switchyard", "STRIPE_API_BASE": tt.base,
			}))
			if (err != nil) != tt.wantErr {
				t.Fatalf("LoadConfig with STRIPE_API_BASE=%q: error %v, want error %v", tt.base, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "STRIPE_API_BASE") {
				t.Errorf("error %q does not name STRIPE_API_BASE", err)
			}
		})
	}
}
