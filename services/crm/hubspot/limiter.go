package hubspot

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/platform/errclass"
)

// defaultInterval is HubSpot's burst window, used until a response reports
// X-HubSpot-RateLimit-Interval-Milliseconds.
const defaultInterval = 10 * time.Second

// limiter keeps the client inside HubSpot's burst limit by following the
// X-HubSpot-RateLimit-Max, -Remaining and -Interval-Milliseconds headers.
//
// It is a token bucket refilled from the headers: every answer sets the
// tokens to the Remaining it reports (and notes when); every request takes
// one. When the tokens fall to the reserve (RateLimitReserve of Max), the
// next request waits one whole interval from the last answer, which frees
// the entire rolling window, and the bucket is refilled to Max; the next
// answer corrects it. Before any answer with the headers it does not limit.
//
// A 429 (or a 5xx with Retry-After) holds every request of the client for
// its retry hint (Retry-After, else the policy's wait: see classify), so
// the client's other workers do not keep knocking meanwhile. A hold
// longer than the window (a DAILY 429) fails the requests at once, unsent,
// with the time left as their retry hint, rather than parking every worker
// until tomorrow.
type limiter struct {
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
	reserve float64

	mu       sync.Mutex
	known    bool
	max      int
	tokens   int
	window   time.Duration
	observed time.Time // when tokens was last set from the headers
	holdTil  time.Time // no request before this (a 429's hint)
}

// errHeld is the error of a request the limiter refuses during a long hold.
var errHeld = errors.New("held back: HubSpot asked to wait (429)")

// wait blocks until a request may be sent, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		if held := l.holdTil.Sub(l.now()); held > 0 {
			longest := max(l.window, defaultInterval)
			l.mu.Unlock()
			if held > longest {
				return errclass.RetryAfter(errHeld, held)
			}
			if err := l.sleep(ctx, held); err != nil {
				return err
			}
			continue
		}
		if !l.known || l.tokens > l.floor() {
			l.tokens--
			l.mu.Unlock()
			return nil
		}
		d := l.observed.Add(l.window).Sub(l.now())
		if d <= 0 {
			l.tokens, l.observed = l.max, l.now()
			l.mu.Unlock()
			continue
		}
		l.mu.Unlock()
		if err := l.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// floor is the number of tokens kept in reserve. Callers hold mu.
func (l *limiter) floor() int {
	return int(math.Ceil(float64(l.max) * l.reserve))
}

// observe refills the bucket from a response's headers; answers without
// them (401, gateway errors) change nothing.
func (l *limiter) observe(h http.Header) {
	maxv, err1 := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Max"))
	rem, err2 := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Remaining"))
	if err1 != nil || err2 != nil || maxv <= 0 {
		return
	}
	window := defaultInterval
	if ms, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
		window = time.Duration(ms) * time.Millisecond
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.known, l.max, l.tokens, l.window, l.observed = true, maxv, rem, window, l.now()
}

// interval is the burst window as last reported.
func (l *limiter) interval() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known {
		return l.window
	}
	return defaultInterval
}

// hold stops requests for d from now; a shorter hold than one in force
// changes nothing.
func (l *limiter) hold(d time.Duration) {
	if d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.now().Add(d); t.After(l.holdTil) {
		l.holdTil = t
	}
}
