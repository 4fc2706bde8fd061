package identity_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/services/identity"
)

// TestStripeReaderClassifiesAnswers: each way a charge refetch can fail
// gets the class that says whether a retry can help, the wait Stripe asked
// for, and a reason in words. The answers are Stripe's documented error
// shape ({"error": {...}} with a Request-Id header).
func TestStripeReaderClassifiesAnswers(t *testing.T) {
	type answer struct {
		status int
		header map[string]string
		body   string
	}
	tests := []struct {
		name       string
		answer     *answer // nil: the connection is closed without an answer
		wantClass  errclass.Class
		wantHint   time.Duration
		wantReason string // the error reads exactly so
	}{
		{
			name:       "404 resource_missing: no retry finds it",
			answer:     &answer{404, nil, `{"error": {"code": "resource_missing", "doc_url": "https://stripe.com/docs/error-codes/resource-missing", "message": "No such charge: 'ch_gone'", "param": "id", "type": "invalid_request_error"}}`},
			wantClass:  errclass.ClassPermanent,
			wantReason: "Stripe answered 404 resource_missing: No such charge: 'ch_gone' (asked with a test-mode key; request req_stub)",
		},
		{
			name:       "400 invalid_request_error",
			answer:     &answer{400, nil, `{"error": {"code": "parameter_unknown", "message": "Received unknown parameter: expand", "param": "expand", "type": "invalid_request_error"}}`},
			wantClass:  errclass.ClassPermanent,
			wantReason: "Stripe answered 400 parameter_unknown: Received unknown parameter: expand (request req_stub)",
		},
		{
			name:       "401: the key is refused",
			answer:     &answer{401, nil, `{"error": {"message": "Invalid API Key provided: rk_test_****tity", "type": "invalid_request_error"}}`},
			wantClass:  errclass.ClassAuth,
			wantReason: "Stripe answered 401 invalid_request_error: Invalid API Key provided: rk_test_****tity (STRIPE_API_KEY (test mode) was refused; request req_stub)",
		},
		{
			name:       "429 with Retry-After: retried no sooner",
			answer:     &answer{429, map[string]string{"Retry-After": "7"}, `{"error": {"code": "rate_limit", "message": "Too many requests hit the API too quickly.", "type": "invalid_request_error"}}`},
			wantClass:  errclass.ClassTransient,
			wantHint:   7 * time.Second,
			wantReason: "Stripe answered 429 rate_limit: Too many requests hit the API too quickly. (request req_stub)",
		},
		{
			name:      "429 without Retry-After",
			answer:    &answer{429, nil, `{"error": {"code": "rate_limit", "message": "Too many requests hit the API too quickly.", "type": "invalid_request_error"}}`},
			wantClass: errclass.ClassTransient,
		},
		{
			name:      "409 lock_timeout with Stripe-Should-Retry: true",
			answer:    &answer{409, map[string]string{"Stripe-Should-Retry": "true", "Retry-After": "2"}, `{"error": {"code": "lock_timeout", "message": "This object cannot be accessed right now because another API request or Stripe process is currently accessing it.", "type": "invalid_request_error"}}`},
			wantClass: errclass.ClassTransient,
			wantHint:  2 * time.Second,
		},
		{
			name:      "500 api_error",
			answer:    &answer{500, nil, `{"error": {"message": "Sorry, something went wrong.", "type": "api_error"}}`},
			wantClass: errclass.ClassTransient,
		},
		{
			name:      "502 from a proxy, not Stripe's error JSON",
			answer:    &answer{502, nil, `<html><body>Bad Gateway</body></html>`},
			wantClass: errclass.ClassTransient,
		},
		{
			name:      "no answer: the connection is closed",
			wantClass: errclass.ClassTransient,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // stripe-go retries 409, 5xx and network failures itself, sleeping in between
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.answer == nil {
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				w.Header().Set("Request-Id", "req_stub")
				for k, v := range tt.answer.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.answer.status)
				_, _ = w.Write([]byte(tt.answer.body))
			}))
			defer api.Close()
			reader := identity.NewStripeReader("rk_test_identity", api.URL, &http.Client{Timeout: 10 * time.Second})

			_, err := reader.ChargeCustomer(context.Background(), "ch_gone")
			if err == nil {
				t.Fatal("ChargeCustomer succeeded, want an error")
			}
			if got := errclass.Of(err); got != tt.wantClass {
				t.Errorf("class %s, want %s: %v", got, tt.wantClass, err)
			}
			if got := errclass.RetryHint(err); got != tt.wantHint {
				t.Errorf("retry hint %v, want %v", got, tt.wantHint)
			}
			if tt.wantReason != "" && err.Error() != tt.wantReason {
				t.Errorf("error reads\n%s\nwant\n%s", err, tt.wantReason)
			}
			var se *stripe.Error
			if tt.wantReason != "" && !errors.As(err, &se) {
				t.Errorf("%v does not unwrap to *stripe.Error", err)
			}
		})
	}
}

// TestRefetchOfAChargeStripeDoesNotHaveIsDeadLetteredAtOnce: identity
// holds a test-mode key and the disputed charge exists only in live mode,
// so Stripe answers 404 resource_missing. No retry can change that: the
// dispute is dead-lettered on its first delivery, as permanent, with
// Stripe's message in words (not stripe-go's JSON dump of the error).
func TestRefetchOfAChargeStripeDoesNotHaveIsDeadLetteredAtOnce(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_identity", "rk_live_identity"}})
	if err := emu.PutCharge(map[string]any{"id": fixtureCharge, "object": "charge", "customer": "cus_OnMHOpJU2HN6Xv",
		"amount": 100, "currency": "usd", "livemode": true, "status": "succeeded"}); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(emu)
	defer api.Close()
	h := startIdentity(t, b.URL, js, map[string]string{"STRIPE_API_KEY": "rk_test_identity", "STRIPE_API_BASE": api.URL,
		"CONSUMER_MAX_ATTEMPTS": "3", "CONSUMER_BACKOFF": "50ms"})
	h.deliver(t, testkit.StripeEvent(t, "charge.dispute.created"))

	d := oneDeadLetter(t, js)
	if d.Class != errclass.ClassPermanent || d.Attempts != 1 {
		t.Errorf("dead-lettered as %s after %d attempts, want permanent after 1", d.Class, d.Attempts)
	}
	wantReason(t, d, fixtureCharge, "404 resource_missing", "No such charge", "a similar object exists in live mode")
	if strings.Contains(d.Reason, `{"`) {
		t.Errorf("dead letter reason holds JSON, want words:\n%s", d.Reason)
	}
	info := settledStripeConsumer(t, js)
	if info.Delivered.Consumer != 1 {
		t.Errorf("the dispute was delivered %d times, want once", info.Delivered.Consumer)
	}
}
