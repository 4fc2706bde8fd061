package projector_test

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/services/projector"
)

// TestRefusesWeakOpsTokensOutsideDevelopment: outside development an ops
// token under 128 bits of entropy stops the projector at start, named by
// its name and never shown; development takes it.
func TestRefusesWeakOpsTokensOutsideDevelopment(t *testing.T) {
	t.Parallel()
	const weak = "0123456789abcdef01234567" // 24 hex characters: 96 bits, long enough for Parse
	tokens := "founder:read+operate:3f9a0c7d52e1b84f6a0d9c3e7b215f48,digest:read:" + weak
	for _, env := range []string{"production", "staging", "development"} {
		t.Run(env, func(t *testing.T) {
			t.Parallel()
			_, err := projector.LoadConfig(config.MapEnv(map[string]string{
				"SWITCHYARD_ENV": env, "SWITCHYARD_OPS_TOKENS": tokens, "DATABASE_URL": "postgres://x@127.0.0.1:1/x",
			}))
			if env == "development" {
				if err != nil {
					t.Fatalf("LoadConfig in development: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "SWITCHYARD_OPS_TOKENS") || !strings.Contains(err.Error(), `"digest"`) || !strings.Contains(err.Error(), "128 bits") {
				t.Fatalf("LoadConfig = %v, want SWITCHYARD_OPS_TOKENS refused naming the weak token digest", err)
			}
			if strings.Contains(err.Error(), "founder") || strings.Contains(err.Error(), weak) || strings.Contains(err.Error(), weak[:10]) {
				t.Fatalf("error %q names the strong token or shows a token", err)
			}
		})
	}
}
