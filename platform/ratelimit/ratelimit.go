// Package ratelimit keeps a vendor API client inside its rate limit by
// following the rate-limit headers the vendor answers with (HubSpot's
// X-HubSpot-RateLimit-*, Zendesk's X-Rate-Limit and Ratelimit-Reset, …),
// and holds every request of the client after the vendor asked it to wait
// (a 429's Retry-After).
//
// The pacing is the same for every vendor; only the headers differ, so
// each adapter passes in a ReadBudget that reads its vendor's headers and
// keeps its vendor's documentation next to it.
//
// A Limiter is a token bucket refilled from the headers: every answer sets
// the tokens to the Remaining it reports; every request takes one. When
// the tokens fall to the reserve (Config.Reserve of the Limit), the next
// request waits until the window resets (Budget.Reset after the answer
// that reported it), and the bucket is refilled to the Limit for one more
// Window; the next answer corrects it. Before any answer with the headers
// it does not limit.
//
// Other clients of the same account share the vendor's budget, so a 429
// can still happen: Hold then stops every request of the client for the
// vendor's retry hint, so that the client's other workers do not keep
// knocking meanwhile. A hold longer than the window (a daily limit) fails
// the requests at once, unsent, with the time left as their retry hint
// (errclass.RetryAfter), rather than parking every worker until it ends.
package ratelimit

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/lifecycle"
)

// Budget is what one answer's rate-limit headers say.
type Budget struct {
	// Limit is how many requests a window allows; a Budget without a
	// positive Limit is ignored.
	Limit int
	// Remaining is how many of them are left (less than 0 counts as 0).
	Remaining int
	// Window is the length of the vendor's window; 0 means Config.Window.
	Window time.Duration
	// Reset is how long after this answer the window frees the budget;
	// 0 means one Window.
	Reset time.Duration
}

// ReadBudget reads a vendor's rate-limit headers from an answer; ok is
// false when the answer carries none (a 401, a proxy's error page), which
// changes nothing.
type ReadBudget func(h http.Header) (b Budget, ok bool)

// Config configures a Limiter. Read and Window are required.
type Config struct {
	// Read reads the vendor's headers.
	Read ReadBudget
	// Window is the vendor's window until an answer reports one, and the
	// longest hold that requests wait out rather than fail (a longer
	// reported window lengthens it).
	Window time.Duration
	// Reserve is the share of the Limit left unused in each window, as a
	// margin for other clients of the account and requests in flight;
	// 0 keeps none.
	Reserve float64
	// Held is the error of a request refused during a long hold (it is
	// returned wrapped, with the time left as its retry hint); default
	// ErrHeld.
	Held error
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, returning ctx.Err() then; default
	// lifecycle.Sleep. Tests pass one that advances a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// ErrHeld is the default error of a request refused during a long hold.
var ErrHeld = errors.New("held back: the vendor asked to wait")

// Limiter paces the requests of one client. It is safe for concurrent
// use; all requests of the client must share one.
type Limiter struct {
	read    ReadBudget
	dflt    time.Duration
	reserve float64
	held    error
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	known   bool // an answer has reported the budget
	limit   int
	tokens  int
	window  time.Duration // as last reported; 0 before
	resetAt time.Time     // when the budget is whole again
	holdTil time.Time     // no request before this (a retry hint)
}

// New returns a Limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if cfg.Read == nil {
		return nil, errors.New("ratelimit: Read is required")
	}
	if cfg.Window <= 0 {
		return nil, errors.New("ratelimit: Window must be positive")
	}
	l := &Limiter{read: cfg.Read, dflt: cfg.Window, reserve: max(cfg.Reserve, 0), held: cfg.Held, now: cfg.Now, sleep: cfg.Sleep}
	if l.held == nil {
		l.held = ErrHeld
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.sleep == nil {
		l.sleep = lifecycle.Sleep
	}
	return l, nil
}

// Wait blocks until a request may be sent, or ctx ends (its error is
// returned). During a hold longer than the window it returns at once an
// error wrapping Config.Held, with the time left as its retry hint.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		if held := l.holdTil.Sub(l.now()); held > 0 {
			longest := max(l.window, l.dflt)
			l.mu.Unlock()
			if held > longest {
				return errclass.RetryAfter(l.held, held)
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
		d := l.resetAt.Sub(l.now())
		if d <= 0 {
			l.tokens, l.resetAt = l.limit, l.now().Add(l.window)
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
func (l *Limiter) floor() int {
	return int(math.Ceil(float64(l.limit) * l.reserve))
}

// Observe refills the bucket from an answer's headers; an answer without
// them changes nothing.
func (l *Limiter) Observe(h http.Header) {
	b, ok := l.read(h)
	if !ok || b.Limit <= 0 {
		return
	}
	window := b.Window
	if window <= 0 {
		window = l.dflt
	}
	reset := b.Reset
	if reset <= 0 {
		reset = window
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.known, l.limit, l.tokens, l.window, l.resetAt = true, b.Limit, max(b.Remaining, 0), window, l.now().Add(reset)
}

// Window is the vendor's window as last reported, else Config.Window.
func (l *Limiter) Window() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known {
		return l.window
	}
	return l.dflt
}

// Hold stops every request for d from now (a vendor's retry hint); a
// shorter hold than one in force changes nothing, and d ≤ 0 nothing at
// all.
func (l *Limiter) Hold(d time.Duration) {
	if d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.now().Add(d); t.After(l.holdTil) {
		l.holdTil = t
	}
}
