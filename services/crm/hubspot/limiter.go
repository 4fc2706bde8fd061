package hubspot

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/platform/ratelimit"
)

// defaultInterval is HubSpot's burst window, used until a response reports
// X-HubSpot-RateLimit-Interval-Milliseconds.
const defaultInterval = 10 * time.Second

// The client keeps inside HubSpot's burst limit with a ratelimit.Limiter
// that follows the X-HubSpot-RateLimit-Max, -Remaining and
// -Interval-Milliseconds headers (readBudget). When the tokens fall to the
// reserve (RateLimitReserve of Max), the next request waits one whole
// interval from the last answer, which frees the entire rolling window.
//
// A 429 (or a 5xx with Retry-After) holds every request of the client for
// its retry hint (Retry-After, else the policy's wait: see classify). A
// hold longer than the window (a DAILY 429) fails the requests at once,
// unsent, with the time left as their retry hint (errHeld), rather than
// parking every worker until tomorrow.

// errHeld is the error of a request the limiter refuses during a long hold.
var errHeld = errors.New("held back: HubSpot asked to wait (429)")

// readBudget reads HubSpot's burst-limit headers: Max and Remaining, and
// the rolling window from Interval-Milliseconds, which the window also
// resets after (the whole rolling window is free one interval after the
// answer). Answers without them (401, gateway errors) report nothing.
func readBudget(h http.Header) (ratelimit.Budget, bool) {
	maxv, err1 := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Max"))
	rem, err2 := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Remaining"))
	if err1 != nil || err2 != nil || maxv <= 0 {
		return ratelimit.Budget{}, false
	}
	window := defaultInterval
	if ms, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
		window = time.Duration(ms) * time.Millisecond
	}
	return ratelimit.Budget{Limit: maxv, Remaining: rem, Window: window, Reset: window}, true
}
