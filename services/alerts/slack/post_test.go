package slack_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/services/alerts/slack"
)

// TestPostHonoursRetryAfter: Slack answers 429 with Retry-After when a
// webhook posts faster than about once a second; the error is transient
// and carries the wait (seconds or an HTTP date) for the consumer's nak.
func TestPostHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter func() string
		min, max   time.Duration
	}{
		{name: "429 seconds", status: http.StatusTooManyRequests, retryAfter: func() string { return "7" }, min: 7 * time.Second, max: 7 * time.Second},
		{name: "503 HTTP date", status: http.StatusServiceUnavailable,
			retryAfter: func() string { return time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat) },
			min:        28 * time.Second, max: 31 * time.Second},
		{name: "429 without Retry-After", status: http.StatusTooManyRequests, retryAfter: func() string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if v := tt.retryAfter(); v != "" {
					w.Header().Set("Retry-After", v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte("rate_limited"))
			}))
			t.Cleanup(ts.Close)
			c, err := slack.New(config.NewSecret(ts.URL+"/services/T000/B000/XXXX"), ts.Client())
			if err != nil {
				t.Fatal(err)
			}
			err = c.Post(context.Background(), "hello")
			if got := errclass.Of(err); got != errclass.ClassTransient {
				t.Fatalf("class: got %v, want transient (%v)", got, err)
			}
			if got := errclass.RetryHint(err); got < tt.min || got > tt.max {
				t.Errorf("retry hint: got %v, want within [%v, %v]", got, tt.min, tt.max)
			}
		})
	}
}
