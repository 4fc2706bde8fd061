package zendesk_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

// refuser answers its first request with status and Retry-After (plain
// text, no rate-limit headers: another client of the account spent the
// budget), then an empty ticket search, noting the fake time of each.
type refuser struct {
	clk        *clock
	status     int
	retryAfter string

	mu   sync.Mutex
	seen []time.Time
}

func (r *refuser) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, r.clk.Now())
	first := len(r.seen) == 1
	r.mu.Unlock()
	if first {
		w.Header().Set("Retry-After", r.retryAfter)
		w.WriteHeader(r.status)
		_, _ = w.Write([]byte("Too many requests"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"tickets":[],"next_page":null,"count":0}`))
}

func (r *refuser) requests() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.seen...)
}

func refusingClient(t *testing.T, status int, retryAfter string) (*zendesk.Client, *refuser) {
	t.Helper()
	clk := &clock{t: t0}
	r := &refuser{clk: clk, status: status, retryAfter: retryAfter}
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	c, err := zendesk.New(zendesk.Config{BaseURL: ts.URL, Email: agentEmail, APIToken: config.NewSecret(agentToken), Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	return c, r
}

// TestRetryAfterHoldsEveryRequest: a 429 or 503 with Retry-After is the
// account's, not one request's: the error carries it as the retry hint,
// and the client sends nothing else until it has passed.
func TestRetryAfterHoldsEveryRequest(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			c, r := refusingClient(t, status, "7")
			ctx := context.Background()
			_, err := c.FindByExternalID(ctx, "evt_1")
			checkErr(t, err, errclass.ClassTransient)
			if got := errclass.RetryHint(err); got != 7*time.Second {
				t.Errorf("retry hint: got %v, want 7s", got)
			}
			if _, err := c.FindByExternalID(ctx, "evt_2"); err != nil {
				t.Fatalf("second call: %v", err)
			}
			seen := r.requests()
			if len(seen) != 2 {
				t.Fatalf("%d requests, want 2", len(seen))
			}
			if gap := seen[1].Sub(seen[0]); gap < 7*time.Second {
				t.Errorf("second request %v after the refusal, want at least the 7s Retry-After", gap)
			}
		})
	}
}

// TestLongRetryAfterFailsFastUnsent: a Retry-After beyond the minute
// window does not park the caller; requests meanwhile fail at once,
// unsent, with the time left as their hint.
func TestLongRetryAfterFailsFastUnsent(t *testing.T) {
	t.Parallel()
	c, r := refusingClient(t, http.StatusTooManyRequests, "120")
	ctx := context.Background()
	if _, err := c.FindByExternalID(ctx, "evt_1"); errclass.RetryHint(err) != 120*time.Second {
		t.Fatalf("first call: %v (hint %v), want a 120s hint", err, errclass.RetryHint(err))
	}
	_, err := c.FindByExternalID(ctx, "evt_2")
	checkErr(t, err, errclass.ClassTransient)
	if got := errclass.RetryHint(err); got != 120*time.Second {
		t.Errorf("held call's hint: got %v, want 120s", got)
	}
	if n := len(r.requests()); n != 1 {
		t.Errorf("%d requests, want 1: a held call is not sent", n)
	}
}
