package projector_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestOpsListenerIsHardened: the status API and console listener refuses a
// request with 100 KiB of headers (431): it had only a header timeout, with
// net/http's 1 MB header limit and no read, write or idle timeout.
func TestOpsListenerIsHardened(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	for _, path := range []string{"/v1/openapi.json", "/login"} {
		req, _ := http.NewRequest(http.MethodGet, h.api+path, nil)
		req.Header.Set("X-Padding", strings.Repeat("x", 100<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET %s with 100 KiB of headers: %d, want 431", path, resp.StatusCode)
		}
	}
}
