// Package stripeerr classifies the errors of Stripe API calls made with
// stripe-go (v76) into the hub's error vocabulary (platform/errclass), so
// that every caller of the Stripe API retries, alerts or gives up the same
// way, and waits as long as Stripe asked it to.
package stripeerr

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/errclass"
)

// KeyMode is the mode of a Stripe API key: "live" for a live secret or
// restricted key (sk_live_, rk_live_), else "test". Classify names it in
// the errors where it explains Stripe's answer.
func KeyMode(key string) string {
	if strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_live_") {
		return "live"
	}
	return "test"
}

// Classify classifies a failed stripe-go call by Stripe's answer
// (errclass.FromHTTP):
//
//   - 429 and 5xx are transient, with the Retry-After Stripe sent (read
//     from the answer stripe-go keeps in stripe.Error.LastResponse) as the
//     retry hint;
//   - Stripe-Should-Retry: true and 409 (a lock or idempotency conflict),
//     which stripe-go retries itself, are transient too, like a 503;
//   - 401 and 403 are auth: STRIPE_API_KEY is refused;
//   - any other 4xx is permanent: 404 resource_missing (an object deleted,
//     or in the other mode or another account), 400 invalid_request_error;
//   - no answer (network, timeout, a body that is not Stripe's error JSON,
//     say a proxy's) is transient;
//   - a Stripe error without a status (stripe-go always sets one) stays
//     unknown.
//
// The error reads as Stripe's answer in words, not as stripe-go's JSON dump
// of it (it becomes a dead letter's reason), and still unwraps to the
// *stripe.Error. keyMode ("live" or "test", see KeyMode; "" if unknown) is
// named where it explains the answer: a refused key, a missing object.
// Classify(nil, …) is nil.
func Classify(err error, keyMode string) error {
	if err == nil {
		return nil
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		return errclass.Transient(err)
	}
	var h http.Header
	if se.LastResponse != nil {
		h = se.LastResponse.Header
	}
	status := se.HTTPStatusCode
	if h.Get("Stripe-Should-Retry") == "true" || status == http.StatusConflict {
		status = http.StatusServiceUnavailable // retried like a 503, Retry-After included
	}
	return errclass.FromHTTP(status, h, &answer{se: se, keyMode: keyMode})
}

// answer is a Stripe error answer in words: status, code, Stripe's message
// (which masks keys), the key's mode where it explains the answer, and the
// request id Stripe's support asks for.
type answer struct {
	se      *stripe.Error
	keyMode string
}

func (e *answer) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Stripe answered %d", e.se.HTTPStatusCode)
	if code := cmp.Or(string(e.se.Code), string(e.se.Type)); code != "" {
		b.WriteString(" " + code)
	}
	if e.se.Msg != "" {
		b.WriteString(": " + e.se.Msg)
	}
	var notes []string
	switch e.se.HTTPStatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		if e.keyMode != "" {
			notes = append(notes, "STRIPE_API_KEY ("+e.keyMode+" mode) was refused")
		} else {
			notes = append(notes, "STRIPE_API_KEY was refused")
		}
	case http.StatusNotFound:
		if e.keyMode != "" {
			notes = append(notes, "asked with a "+e.keyMode+"-mode key")
		}
	}
	if e.se.RequestID != "" {
		notes = append(notes, "request "+e.se.RequestID)
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	return b.String()
}

func (e *answer) Unwrap() error { return e.se }
