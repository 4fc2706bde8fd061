package hubspot_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

const propertyPath = "/crm/v3/properties/contacts/email"

// headers returns the rate-limit headers of r that are set.
func rateHeaders(r response) map[string]string {
	out := map[string]string{}
	for _, h := range []string{"Max", "Remaining", "Interval-Milliseconds", "Daily", "Daily-Remaining", "Secondly", "Secondly-Remaining"} {
		if v := r.header.Get("X-HubSpot-RateLimit-" + h); v != "" {
			out[h] = v
		}
	}
	return out
}

func wantRateLimited(t *testing.T, r response, policy, message string) {
	t.Helper()
	wantStatus(t, r, http.StatusTooManyRequests)
	e := decode[hsError](t, r)
	if e.Status != "error" || e.ErrorType != "RATE_LIMIT" || e.PolicyName != policy || e.Message != message ||
		!uuidPattern.MatchString(e.CorrelationID) || e.RequestID == "" {
		t.Errorf("429 body = %s\nwant RATE_LIMIT %s %q", r.body, policy, message)
	}
}

func TestRateLimitTenSecondWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{TenSecondLimit: 5, DailyLimit: 1000})

	r := e.get(t, propertyPath)
	wantStatus(t, r, http.StatusOK)
	want := map[string]string{"Max": "5", "Remaining": "4", "Interval-Milliseconds": "10000", "Daily": "1000", "Daily-Remaining": "999"}
	if got := rateHeaders(r); len(got) != len(want) || got["Max"] != "5" || got["Remaining"] != "4" ||
		got["Interval-Milliseconds"] != "10000" || got["Daily"] != "1000" || got["Daily-Remaining"] != "999" {
		t.Errorf("headers %v, want %v", got, want)
	}
	e.clk.Advance(4 * time.Second)
	for i := range 4 {
		r = e.get(t, propertyPath)
		wantStatus(t, r, http.StatusOK)
		if got, want := r.header.Get("X-HubSpot-RateLimit-Remaining"), strconv.Itoa(3-i); got != want {
			t.Errorf("request %d: Remaining %s, want %s", i+2, got, want)
		}
	}

	r = e.get(t, propertyPath)
	wantRateLimited(t, r, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
	if r.header.Get("Retry-After") != "" {
		t.Errorf("Retry-After %q sent though Options.RetryAfter is off", r.header.Get("Retry-After"))
	}
	if got := r.header.Get("X-HubSpot-RateLimit-Remaining"); got != "0" {
		t.Errorf("429 Remaining = %q, want 0", got)
	}

	// The window rolls: the first request (at t0) leaves it at t0+10s, the
	// other four (at t0+4s) only at t0+14s.
	e.clk.Advance(6*time.Second - time.Millisecond)
	wantStatus(t, e.get(t, propertyPath), http.StatusTooManyRequests)
	e.clk.Advance(time.Millisecond)
	r = e.get(t, propertyPath)
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("X-HubSpot-RateLimit-Remaining"); got != "0" {
		t.Errorf("Remaining = %q, want 0 (one slot freed and used)", got)
	}
	wantStatus(t, e.get(t, propertyPath), http.StatusTooManyRequests)
	e.clk.Advance(4 * time.Second)
	for range 4 {
		wantStatus(t, e.get(t, propertyPath), http.StatusOK)
	}
	r = e.get(t, propertyPath)
	wantStatus(t, r, http.StatusTooManyRequests)
	// Refused requests took no budget: 10 served of the day's 1000.
	if got := r.header.Get("X-HubSpot-RateLimit-Daily-Remaining"); got != "990" {
		t.Errorf("Daily-Remaining = %s, want 990", got)
	}
}

func TestRateLimitRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{TenSecondLimit: 2, RetryAfter: true})
	wantStatus(t, e.get(t, propertyPath), http.StatusOK)
	wantStatus(t, e.get(t, propertyPath), http.StatusOK)
	if got := e.get(t, propertyPath).header.Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After = %q, want 10", got)
	}
	e.clk.Advance(2500 * time.Millisecond)
	if got := e.get(t, propertyPath).header.Get("Retry-After"); got != "8" {
		t.Errorf("Retry-After = %q, want 8 (7.5 s rounded up)", got)
	}
}

func TestRateLimitDaily(t *testing.T) {
	t.Parallel()
	est := time.FixedZone("EST", -5*3600)
	e := newEnv(t, hubspot.Options{DailyLimit: 3, Location: est, RetryAfter: true})
	for range 3 {
		wantStatus(t, e.get(t, propertyPath), http.StatusOK)
	}
	r := e.get(t, propertyPath)
	wantRateLimited(t, r, "DAILY", "You have reached your daily limit.")
	// t0 is 04:00 in EST: the day ends in 20 hours.
	if got := r.header.Get("Retry-After"); got != strconv.Itoa(20*3600) {
		t.Errorf("Retry-After = %s, want %d", got, 20*3600)
	}
	if got := r.header.Get("X-HubSpot-RateLimit-Daily-Remaining"); got != "0" {
		t.Errorf("Daily-Remaining = %s", got)
	}
	e.clk.Advance(20*time.Hour - time.Second)
	wantStatus(t, e.get(t, propertyPath), http.StatusTooManyRequests)
	e.clk.Advance(time.Second)
	r = e.get(t, propertyPath)
	wantStatus(t, r, http.StatusOK)
	if got := r.header.Get("X-HubSpot-RateLimit-Daily-Remaining"); got != "2" {
		t.Errorf("new day: Daily-Remaining = %s, want 2", got)
	}
}

func TestRateLimitSecondly(t *testing.T) {
	t.Parallel()
	t.Run("search", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, hubspot.Options{SearchPerSecondLimit: 2})
		for range 2 {
			e.search(t, map[string]any{})
		}
		r := e.do(t, http.MethodPost, "/crm/v3/objects/contacts/search", token, map[string]any{})
		wantRateLimited(t, r, "SECONDLY", "You have reached your secondly limit.")
		wantStatus(t, e.get(t, propertyPath), http.StatusOK) // other endpoints are not limited by it
		e.clk.Advance(time.Second)
		e.search(t, map[string]any{})
	})
	t.Run("all requests", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, hubspot.Options{PerSecondLimit: 3})
		for i := range 3 {
			r := e.get(t, propertyPath)
			wantStatus(t, r, http.StatusOK)
			if h := rateHeaders(r); h["Secondly"] != "3" || h["Secondly-Remaining"] != strconv.Itoa(2-i) {
				t.Errorf("request %d: headers %v", i, h)
			}
		}
		wantRateLimited(t, e.get(t, propertyPath), "SECONDLY", "You have reached your secondly limit.")
		e.clk.Advance(time.Second)
		wantStatus(t, e.get(t, propertyPath), http.StatusOK)
	})
}

func TestRateLimitDefaults(t *testing.T) {
	t.Parallel()
	clk := &clock{t: t0}
	ts := httptest.NewServer(hubspot.New(hubspot.Options{Now: clk.Now}))
	t.Cleanup(ts.Close)
	e := &env{base: ts.URL, clk: clk}

	r := e.do(t, http.MethodGet, propertyPath, "pat-na1-default", nil)
	wantStatus(t, r, http.StatusOK)
	if h := rateHeaders(r); h["Max"] != "100" || h["Remaining"] != "99" || h["Daily"] != "250000" || h["Secondly"] != "" {
		t.Errorf("default headers %v", h)
	}
	for range 99 {
		wantStatus(t, e.do(t, http.MethodGet, propertyPath, "pat-na1-default", nil), http.StatusOK)
	}
	wantRateLimited(t, e.do(t, http.MethodGet, propertyPath, "pat-na1-default", nil),
		"TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
	clk.Advance(hubspot.RateLimitInterval)
	wantStatus(t, e.do(t, http.MethodGet, propertyPath, "pat-na1-default", nil), http.StatusOK)
}

func TestUnauthenticatedRequestsTakeNoBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{TenSecondLimit: 1})
	for range 3 {
		r := e.do(t, http.MethodGet, propertyPath, "", nil)
		wantStatus(t, r, http.StatusUnauthorized)
		if h := rateHeaders(r); len(h) != 0 {
			t.Errorf("401 with rate-limit headers %v", h)
		}
	}
	wantStatus(t, e.get(t, propertyPath), http.StatusOK)
}
