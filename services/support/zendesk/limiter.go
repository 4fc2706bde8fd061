package zendesk

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/platform/ratelimit"
)

// window is Zendesk's rate-limit window: budgets are per minute.
const window = time.Minute

// The client keeps inside the account's per-minute budget with a
// ratelimit.Limiter that follows X-Rate-Limit and X-Rate-Limit-Remaining
// (and Ratelimit-Reset, the seconds until the window resets, where Zendesk
// sends it): readBudget. At zero tokens the next request waits until the
// window resets (Ratelimit-Reset after the answer, or a whole minute when
// absent). Other clients of the same account share the budget, so a 429
// can still happen; it is returned as a Transient error with its
// Retry-After, and the limiter holds every other request of the client
// until that Retry-After (a 429 or 503 with one) has passed. A hold longer
// than the window fails the requests at once, unsent, with the time left
// as their retry hint (errHeld), rather than parking every worker.

// errHeld is the error of a request the limiter refuses during a long hold.
var errHeld = errors.New("held back: Zendesk asked to wait (Retry-After)")

// readBudget reads Zendesk's rate-limit headers; answers without them
// report nothing. A Ratelimit-Reset outside (0, 60] seconds is ignored:
// the window then resets a whole minute after the answer.
func readBudget(h http.Header) (ratelimit.Budget, bool) {
	limit, err1 := strconv.Atoi(h.Get("X-Rate-Limit"))
	rem, err2 := strconv.Atoi(h.Get("X-Rate-Limit-Remaining"))
	if err1 != nil || err2 != nil || limit <= 0 {
		return ratelimit.Budget{}, false
	}
	reset := window
	if s, err := strconv.Atoi(h.Get("Ratelimit-Reset")); err == nil && s > 0 && s <= 60 {
		reset = time.Duration(s) * time.Second
	}
	return ratelimit.Budget{Limit: limit, Remaining: rem, Window: window, Reset: reset}, true
}
