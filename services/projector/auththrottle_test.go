package projector_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/services/projector"
)

// apiAs calls GET /v1/status with token as the client a trusted proxy
// names in X-Forwarded-For.
func (h *hub) apiAs(t *testing.T, token, client string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.api+"/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header
}

// checkRetryAfter fails unless h says to wait 1 to 60 whole seconds.
func checkRetryAfter(t *testing.T, what string, h http.Header) {
	t.Helper()
	if n, err := strconv.Atoi(h.Get("Retry-After")); err != nil || n < 1 || n > 60 {
		t.Errorf("%s: Retry-After = %q, want 1 to 60 seconds", what, h.Get("Retry-After"))
	}
}

// TestAPIThrottlesFailedAuthentication: ten unknown tokens in a minute from
// one client (as the trusted proxy names it) lock that client out of the
// status API — even with a valid token — with 429 and Retry-After, and out
// of the console's login too (one count); one unknown token presented from
// ten clients is refused from an eleventh. Other clients and tokens go on.
func TestAPIThrottlesFailedAuthentication(t *testing.T) {
	t.Parallel()
	h := start(t, map[string]string{"OPS_TRUSTED_PROXIES": "127.0.0.1, ::1"})

	for i := range 10 {
		if code, body, _ := h.apiAs(t, fmt.Sprintf("guess-%02d-0123456789abcdef", i), "203.0.113.7"); code != http.StatusUnauthorized {
			t.Fatalf("unknown token %d: %d %s, want 401", i+1, code, body)
		}
	}
	code, body, hdr := h.apiAs(t, operateToken, "203.0.113.7")
	if code != http.StatusTooManyRequests {
		t.Fatalf("a valid token from the locked-out client: %d %s, want 429", code, body)
	}
	checkRetryAfter(t, "API 429", hdr)
	validateResponse(t, http.MethodGet, "/v1/status", code, body)
	if strings.Contains(string(body), operateToken) {
		t.Fatalf("429 echoes the token: %s", body)
	}
	if code, body, _ := h.apiAs(t, operateToken, "198.51.100.9"); code != http.StatusOK {
		t.Fatalf("another client behind the same proxy: %d %s, want 200", code, body)
	}
	// The console's login counts with the API.
	f := &consoleFixture{hub: h}
	code, _, hdr = f.browser(t).do(http.MethodPost, "/login", url.Values{"token": {operateToken}, "next": {"/console/"}},
		map[string]string{"X-Forwarded-For": "203.0.113.7"})
	if code != http.StatusTooManyRequests {
		t.Fatalf("console login from the client the API locked out: %d, want 429", code)
	}
	checkRetryAfter(t, "console 429", hdr)

	const revoked = "revoked-token-0123456789abcdef"
	for i := range 10 {
		if code, body, _ := h.apiAs(t, revoked, fmt.Sprintf("192.0.2.%d", i+1)); code != http.StatusUnauthorized {
			t.Fatalf("the revoked token from client %d: %d %s, want 401", i+1, code, body)
		}
	}
	if code, body, hdr := h.apiAs(t, revoked, "192.0.2.11"); code != http.StatusTooManyRequests {
		t.Fatalf("the revoked token from an eleventh client: %d %s, want 429", code, body)
	} else {
		checkRetryAfter(t, "per-token 429", hdr)
	}
	if code, body, _ := h.apiAs(t, "another-guess-0123456789abcdef", "192.0.2.11"); code != http.StatusUnauthorized {
		t.Fatalf("another token from that client: %d %s, want 401", code, body)
	}
	if code, body, _ := h.apiAs(t, readToken, "192.0.2.11"); code != http.StatusOK {
		t.Fatalf("a valid token from that client: %d %s, want 200", code, body)
	}
}

// TestLoginThrottlePerToken: one wrong token tried at the console's login
// from ten clients is refused from an eleventh, with Retry-After; that
// client's own valid token still logs in.
func TestLoginThrottlePerToken(t *testing.T) {
	t.Parallel()
	f := &consoleFixture{hub: start(t, map[string]string{"OPS_TRUSTED_PROXIES": "127.0.0.1, ::1"})}
	attempt := func(token, client string) (int, http.Header) {
		t.Helper()
		code, _, hdr := f.browser(t).do(http.MethodPost, "/login", url.Values{"token": {token}, "next": {"/console/"}},
			map[string]string{"X-Forwarded-For": client})
		return code, hdr
	}
	const leaked = "leaked-old-token-0123456789abcdef"
	for i := range 10 {
		if code, _ := attempt(leaked, fmt.Sprintf("192.0.2.%d", i+1)); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, code)
		}
	}
	code, hdr := attempt(leaked, "192.0.2.11")
	if code != http.StatusTooManyRequests {
		t.Fatalf("the same token from an eleventh client: %d, want 429", code)
	}
	checkRetryAfter(t, "login 429", hdr)
	if code, _ := attempt(operateToken, "192.0.2.11"); code != http.StatusSeeOther {
		t.Fatalf("a valid token from that client: %d, want 303 (logged in)", code)
	}
}

// TestThrottleIsSharedByReplicas: two projectors on one database (two
// replicas behind a load balancer, or one restarted): ten failed
// authentications from one client on the first lock that client out of
// the second as well, and of a third started afterwards.
func TestThrottleIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	b := testkit.NATS(t)
	dbURL := testkit.Postgres(t)
	replica := func() *hub {
		ops := freeAddr(t)
		env := config.MapEnv(map[string]string{
			"PROJECTOR_ADDR": freeAddr(t), "OPS_ADDR": ops, "NATS_URL": b.URL, "DATABASE_URL": dbURL, "LOG_LEVEL": "error",
			"SWITCHYARD_OPS_TOKENS": opsTokens, "OPS_TRUSTED_PROXIES": "127.0.0.1, ::1",
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- projector.Run(ctx, env, io.Discard) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("projector.Run: %v", err)
			}
		})
		testkit.WaitFor(t, 20*time.Second, "projector ready", func() bool {
			resp, err := http.Get("http://" + env("PROJECTOR_ADDR") + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		return &hub{api: "http://" + ops}
	}
	first, second := replica(), replica()
	for i := range 10 {
		if code, body, _ := first.apiAs(t, fmt.Sprintf("guess-%02d-0123456789abcdef", i), "203.0.113.8"); code != http.StatusUnauthorized {
			t.Fatalf("unknown token %d on the first replica: %d %s, want 401", i+1, code, body)
		}
	}
	for name, h := range map[string]*hub{"the second replica": second, "a replica started later": replica()} {
		code, body, hdr := h.apiAs(t, operateToken, "203.0.113.8")
		if code != http.StatusTooManyRequests {
			t.Errorf("%s, a valid token from the client the first locked out: %d %s, want 429", name, code, body)
			continue
		}
		checkRetryAfter(t, name, hdr)
		if code, body, _ := h.apiAs(t, operateToken, "198.51.100.10"); code != http.StatusOK {
			t.Errorf("%s, another client: %d %s, want 200", name, code, body)
		}
	}
}
