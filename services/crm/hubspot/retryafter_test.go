package hubspot_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	crmhubspot "github.com/switchyard/switchyard/services/crm/hubspot"
)

// refuser answers its first request with status, the extra headers and
// body (no X-HubSpot-RateLimit-* headers: a gateway's answer, or another
// app's), then a property, noting the fake time of each request.
type refuser struct {
	clk    *clock
	status int
	header map[string]string
	body   string

	mu   sync.Mutex
	seen []time.Time
}

func (r *refuser) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	r.seen = append(r.seen, r.clk.Now())
	first := len(r.seen) == 1
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if first {
		for k, v := range r.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(r.status)
		_, _ = w.Write([]byte(r.body))
		return
	}
	_, _ = w.Write([]byte(`{"name":"switchyard_plan","label":"Plan","type":"string","fieldType":"text","groupName":"contactinformation"}`))
}

func (r *refuser) requests() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.seen...)
}

// TestRateLimitHoldsEveryRequest: a 429 is the private app's, not one
// request's: its wait (Retry-After when sent, else the policy's) is the
// error's retry hint, and the client sends nothing else until it has
// passed; the same for a 503 with Retry-After. A wait beyond the 10 s
// window (a DAILY 429) does not park callers: requests meanwhile fail at
// once, unsent, with the time left as their hint.
func TestRateLimitHoldsEveryRequest(t *testing.T) {
	t.Parallel()
	const limited = `{"status":"error","errorType":"RATE_LIMIT","policyName":"%s","message":"limit","correlationId":"c-1"}`
	tests := []struct {
		name     string
		status   int
		header   map[string]string
		policy   string
		wantHint time.Duration
		wantSent bool // the second call is sent (after the hint), not refused unsent
	}{
		{name: "429 with Retry-After", status: 429, header: map[string]string{"Retry-After": "7"}, policy: "TEN_SECONDLY_ROLLING", wantHint: 7 * time.Second, wantSent: true},
		{name: "429 secondly", status: 429, policy: "SECONDLY", wantHint: time.Second, wantSent: true},
		{name: "429 ten-secondly without headers", status: 429, policy: "TEN_SECONDLY_ROLLING", wantHint: 10 * time.Second, wantSent: true},
		{name: "503 with Retry-After", status: 503, header: map[string]string{"Retry-After": "7"}, wantHint: 7 * time.Second, wantSent: true},
		{name: "429 daily", status: 429, policy: "DAILY", wantHint: 12 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{t: t0}
			body := `{"status":"error","message":"unavailable"}`
			if tt.policy != "" {
				body = fmt.Sprintf(limited, tt.policy)
			}
			r := &refuser{clk: clk, status: tt.status, header: tt.header, body: body}
			ts := httptest.NewServer(r)
			t.Cleanup(ts.Close)
			c, err := crmhubspot.New(crmhubspot.Config{BaseURL: ts.URL, Token: config.NewSecret(token), Now: clk.Now, Sleep: clk.Sleep})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			props := []crmhubspot.Property{{Name: "switchyard_plan", Label: "Plan", Type: "string", FieldType: "text"}}
			err = c.EnsureProperties(ctx, props)
			if got := errclass.Of(err); got != errclass.ClassTransient {
				t.Fatalf("class: got %v, want transient (%v)", got, err)
			}
			if got := errclass.RetryHint(err); got != tt.wantHint {
				t.Errorf("retry hint: got %v, want %v", got, tt.wantHint)
			}
			err = c.EnsureProperties(ctx, props)
			seen := r.requests()
			if !tt.wantSent {
				if errclass.Of(err) != errclass.ClassTransient || errclass.RetryHint(err) != tt.wantHint {
					t.Errorf("held call: %v (hint %v), want transient with %v left", err, errclass.RetryHint(err), tt.wantHint)
				}
				if len(seen) != 1 {
					t.Errorf("%d requests, want 1: a held call is not sent", len(seen))
				}
				return
			}
			if err != nil {
				t.Fatalf("second call: %v", err)
			}
			if len(seen) < 2 {
				t.Fatalf("%d requests, want the second call sent", len(seen))
			}
			if gap := seen[1].Sub(seen[0]); gap < tt.wantHint {
				t.Errorf("next request %v after the refusal, want at least %v", gap, tt.wantHint)
			}
		})
	}
}
