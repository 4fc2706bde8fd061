package projector_test

import (
	"io"
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

// TestListenersKeepTheirRoutes: the process's one route table keeps the
// two addresses apart. Health, readiness and metrics are on PROJECTOR_ADDR
// only (the ops address answers them with the status API's 404), and the
// status API and console are on the ops address only.
func TestListenersKeepTheirRoutes(t *testing.T) {
	t.Parallel()
	h := start(t, nil)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := get(h.admin + path); code != http.StatusOK {
			t.Errorf("PROJECTOR_ADDR %s = %d, want 200", path, code)
		}
		if code, body := get(h.api + path); code != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
			t.Errorf("ops %s = %d %q, want the status API's 404", path, code, body)
		}
	}
	for _, path := range []string{"/v1/openapi.json", "/login"} {
		if code, _ := get(h.api + path); code != http.StatusOK {
			t.Errorf("ops %s = %d, want 200", path, code)
		}
		if code, _ := get(h.admin + path); code != http.StatusNotFound {
			t.Errorf("PROJECTOR_ADDR %s = %d, want 404", path, code)
		}
	}
}
