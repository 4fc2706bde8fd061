package stripeerr_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/stripeerr"
)

// stripeAnswer is a *stripe.Error as stripe-go v76 returns it for an error
// answer: the status, Stripe's error object, the Request-Id and the answer
// itself (whose headers hold Retry-After) in LastResponse.
func stripeAnswer(status int, typ stripe.ErrorType, code stripe.ErrorCode, msg string, header map[string]string) *stripe.Error {
	h := http.Header{}
	for k, v := range header {
		h.Set(k, v)
	}
	return &stripe.Error{
		APIResource:    stripe.APIResource{LastResponse: &stripe.APIResponse{Header: h, StatusCode: status, RequestID: "req_stub"}},
		HTTPStatusCode: status, Type: typ, Code: code, Msg: msg, RequestID: "req_stub",
	}
}

func TestClassify(t *testing.T) {
	network := &url.Error{Op: "Get", URL: "https://api.stripe.com/v1/charges/ch_1", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	tests := []struct {
		name      string
		err       error
		keyMode   string
		wantClass errclass.Class
		wantHint  time.Duration
		wantWords string // "": not checked
	}{
		{
			name:      "401: the key is refused",
			err:       stripeAnswer(401, stripe.ErrorTypeInvalidRequest, "", "Invalid API Key provided: rk_test_****tity", nil),
			keyMode:   "test",
			wantClass: errclass.ClassAuth,
			wantWords: "Stripe answered 401 invalid_request_error: Invalid API Key provided: rk_test_****tity (STRIPE_API_KEY (test mode) was refused; request req_stub)",
		},
		{
			name:      "403 with no key mode known",
			err:       stripeAnswer(403, stripe.ErrorTypeInvalidRequest, "", "The provided key does not have the required permissions.", nil),
			wantClass: errclass.ClassAuth,
			wantWords: "Stripe answered 403 invalid_request_error: The provided key does not have the required permissions. (STRIPE_API_KEY was refused; request req_stub)",
		},
		{
			name:      "404 resource_missing: no retry finds it",
			err:       stripeAnswer(404, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeResourceMissing, "No such charge: 'ch_gone'", nil),
			keyMode:   "live",
			wantClass: errclass.ClassPermanent,
			wantWords: "Stripe answered 404 resource_missing: No such charge: 'ch_gone' (asked with a live-mode key; request req_stub)",
		},
		{
			name:      "400 invalid_request_error",
			err:       stripeAnswer(400, stripe.ErrorTypeInvalidRequest, "parameter_unknown", "Received unknown parameter: expand", nil),
			keyMode:   "test",
			wantClass: errclass.ClassPermanent,
			wantWords: "Stripe answered 400 parameter_unknown: Received unknown parameter: expand (request req_stub)",
		},
		{
			name:      "429 with Retry-After: retried no sooner",
			err:       stripeAnswer(429, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeRateLimit, "Too many requests hit the API too quickly.", map[string]string{"Retry-After": "7"}),
			wantClass: errclass.ClassTransient,
			wantHint:  7 * time.Second,
			wantWords: "Stripe answered 429 rate_limit: Too many requests hit the API too quickly. (request req_stub)",
		},
		{
			name:      "429 without Retry-After",
			err:       stripeAnswer(429, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeRateLimit, "Too many requests hit the API too quickly.", nil),
			wantClass: errclass.ClassTransient,
		},
		{
			name:      "503 with Retry-After",
			err:       stripeAnswer(503, stripe.ErrorTypeAPI, "", "Service unavailable.", map[string]string{"Retry-After": "30"}),
			wantClass: errclass.ClassTransient,
			wantHint:  30 * time.Second,
		},
		{
			name:      "500 api_error",
			err:       stripeAnswer(500, stripe.ErrorTypeAPI, "", "Sorry, something went wrong.", nil),
			wantClass: errclass.ClassTransient,
			wantWords: "Stripe answered 500 api_error: Sorry, something went wrong. (request req_stub)",
		},
		{
			name:      "409 lock_timeout: retried like a 503",
			err:       stripeAnswer(409, stripe.ErrorTypeInvalidRequest, stripe.ErrorCodeLockTimeout, "This object cannot be accessed right now.", nil),
			wantClass: errclass.ClassTransient,
		},
		{
			name:      "400 with Stripe-Should-Retry: true and Retry-After",
			err:       stripeAnswer(400, stripe.ErrorTypeInvalidRequest, "", "Try again.", map[string]string{"Stripe-Should-Retry": "true", "Retry-After": "2"}),
			wantClass: errclass.ClassTransient,
			wantHint:  2 * time.Second,
		},
		{
			name:      "a Stripe error without an answer kept: classified by its status alone",
			err:       &stripe.Error{HTTPStatusCode: 429, Type: stripe.ErrorTypeInvalidRequest, Msg: "slow down"},
			wantClass: errclass.ClassTransient,
			wantWords: "Stripe answered 429 invalid_request_error: slow down",
		},
		{
			name:      "a Stripe error without a status stays unknown",
			err:       &stripe.Error{Type: stripe.ErrorTypeAPI, Msg: "?"},
			wantClass: errclass.ClassUnknown,
		},
		{
			name:      "wrapped by the caller",
			err:       fmt.Errorf("get charge: %w", stripeAnswer(401, stripe.ErrorTypeInvalidRequest, "", "Invalid API Key provided", nil)),
			wantClass: errclass.ClassAuth,
		},
		{
			name:      "network error: no answer",
			err:       network,
			wantClass: errclass.ClassTransient,
			wantWords: network.Error(),
		},
		{
			name:      "not Stripe's error JSON (a proxy's page)",
			err:       errors.New("<html><body>Bad Gateway</body></html>"),
			wantClass: errclass.ClassTransient,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := stripeerr.Classify(tt.err, tt.keyMode)
			if got := errclass.Of(err); got != tt.wantClass {
				t.Errorf("class %s, want %s: %v", got, tt.wantClass, err)
			}
			if got := errclass.RetryHint(err); got != tt.wantHint {
				t.Errorf("retry hint %v, want %v", got, tt.wantHint)
			}
			if tt.wantWords != "" && err.Error() != tt.wantWords {
				t.Errorf("error reads\n%s\nwant\n%s", err, tt.wantWords)
			}
			// Stripe's answer stays reachable (its words replace the
			// caller's wrapping); any other error is kept as it is.
			var want, got *stripe.Error
			switch {
			case errors.As(tt.err, &want):
				if !errors.As(err, &got) || got != want {
					t.Errorf("%v does not unwrap to the *stripe.Error", err)
				}
			case !errors.Is(err, tt.err):
				t.Errorf("%v does not unwrap to %v", err, tt.err)
			}
		})
	}
}

func TestClassifyNil(t *testing.T) {
	if err := stripeerr.Classify(nil, "test"); err != nil {
		t.Errorf("Classify(nil) = %v, want nil", err)
	}
}

func TestKeyMode(t *testing.T) {
	for key, want := range map[string]string{
		"sk_live_abc": "live", "rk_live_abc": "live",
		"sk_test_abc": "test", "rk_test_abc": "test", "": "test", "pk_live_abc": "test",
	} {
		if got := stripeerr.KeyMode(key); got != want {
			t.Errorf("KeyMode(%q) = %q, want %q", key, got, want)
		}
	}
}
