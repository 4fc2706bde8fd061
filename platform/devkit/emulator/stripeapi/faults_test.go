package stripeapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
)

func TestRateLimit(t *testing.T) {
	t.Parallel()
	clk := &clock{t: fixtureNow}
	srv, base := newServer(t, stripeapi.Options{Now: clk.Now})
	srv.SetRateLimit(3)

	for i := range 3 {
		if r := get(t, base+"/v1/events", testKey); r.status != http.StatusOK {
			t.Fatalf("request %d within the limit: status %d: %s", i, r.status, r.body)
		}
	}
	// Unauthenticated requests are not the account's and take no token.
	if r := get(t, base+"/v1/events", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("no key: status %d, want 401", r.status)
	}
	r := get(t, base+"/v1/events", testKey)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("fourth request in the same second: status %d, want 429: %s", r.status, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	e := decodeError(t, r).Error
	if e.Type != "invalid_request_error" || e.Code != "rate_limit" || e.DocURL != "https://stripe.com/docs/error-codes/rate-limit" {
		t.Errorf("error = %+v, want invalid_request_error rate_limit", e)
	}
	if !requestIDPattern.MatchString(r.header.Get("Request-Id")) {
		t.Errorf("429 without Request-Id")
	}

	// A third of a second refills one token at 3/s.
	clk.Advance(time.Second / 3)
	if r := get(t, base+"/v1/events", testKey); r.status != http.StatusOK {
		t.Fatalf("after 1/3 s: status %d, want 200", r.status)
	}
	if r := get(t, base+"/v1/events", testKey); r.status != http.StatusTooManyRequests {
		t.Fatalf("second request after 1/3 s: status %d, want 429", r.status)
	}
	clk.Advance(time.Second)
	for i := range 3 {
		if r := get(t, base+"/v1/events", testKey); r.status != http.StatusOK {
			t.Fatalf("after a full second, request %d: status %d", i, r.status)
		}
	}

	srv.SetRateLimit(0)
	for range 10 {
		if r := get(t, base+"/v1/events", testKey); r.status != http.StatusOK {
			t.Fatalf("limit off: status %d", r.status)
		}
	}
}

func TestRateLimitPerMode(t *testing.T) {
	t.Parallel()
	clk := &clock{t: fixtureNow}
	_, base := newServer(t, stripeapi.Options{Now: clk.Now, TestReadLimit: 2, LiveReadLimit: 4})
	statuses := func(key string, n int) (got []int) {
		for range n {
			got = append(got, get(t, base+"/v1/events", key).status)
		}
		return got
	}
	if got := statuses(testKey, 3); got[0] != 200 || got[1] != 200 || got[2] != 429 {
		t.Errorf("test mode at 2/s: %v, want 200 200 429", got)
	}
	// The restricted test key shares the test-mode bucket; live has its own.
	if got := statuses(restrictedKey, 1); got[0] != 429 {
		t.Errorf("restricted test key: %v, want 429", got)
	}
	if got := statuses(liveKey, 5); got[3] != 200 || got[4] != 429 {
		t.Errorf("live mode at 4/s: %v, want four 200 then 429", got)
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status         int
		wantType       string
		wantCode       string
		wantRetryAfter string
	}{
		{500, "api_error", "", ""},
		{502, "api_error", "", ""},
		{503, "api_error", "", ""},
		{429, "invalid_request_error", "rate_limit", "1"},
		{401, "invalid_request_error", "", ""},
		{400, "invalid_request_error", "", ""},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			srv, base := newServer(t, stripeapi.Options{})
			srv.FailNext(2, tt.status)
			for i := range 2 {
				r := get(t, base+"/v1/events", testKey)
				if r.status != tt.status {
					t.Fatalf("request %d: status %d, want %d", i, r.status, tt.status)
				}
				e := decodeError(t, r).Error
				if e.Type != tt.wantType || e.Code != tt.wantCode || r.header.Get("Retry-After") != tt.wantRetryAfter {
					t.Errorf("request %d: error %+v Retry-After %q; want type %q code %q Retry-After %q",
						i, e, r.header.Get("Retry-After"), tt.wantType, tt.wantCode, tt.wantRetryAfter)
				}
			}
			if r := get(t, base+"/v1/events", testKey); r.status != http.StatusOK {
				t.Errorf("third request: status %d, want 200 (recovered)", r.status)
			}
		})
	}

	t.Run("queued in order, unauthenticated requests skip", func(t *testing.T) {
		t.Parallel()
		srv, base := newServer(t, stripeapi.Options{})
		srv.FailNext(1, 500)
		srv.FailNext(1, 429)
		var got []int
		for _, key := range []string{"", testKey, testKey, testKey} {
			got = append(got, get(t, base+"/v1/events", key).status)
		}
		if want := []int{401, 500, 429, 200}; got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
			t.Errorf("statuses %v, want %v", got, want)
		}
	})
}

func TestLatency(t *testing.T) {
	t.Parallel()
	srv, base := newServer(t, stripeapi.Options{})

	srv.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if r := get(t, base+"/v1/events", testKey); r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("answered after %v, before the 50ms latency", el)
	}

	// A client that gives up sees its deadline, and the server lets go.
	srv.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
	mustNoErr(t, err)
	req.Header.Set("Authorization", "Bearer "+testKey)
	if res, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if res != nil {
			res.Body.Close()
		}
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	srv.SetLatency(0)
	if r := get(t, base+"/v1/events", testKey); r.status != http.StatusOK {
		t.Fatalf("latency off: status %d", r.status)
	}
}
