package zendesk

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchyard/switchyard/platform/errclass"
)

// window is Zendesk's rate-limit window: budgets are per minute.
const window = time.Minute

// limiter keeps the client inside the account's per-minute budget by
// following X-Rate-Limit and X-Rate-Limit-Remaining (and Ratelimit-Reset,
// the seconds until the window resets, where Zendesk sends it).
//
// Every answer sets the tokens to the Remaining it reports; every request
// takes one. At zero tokens the next request waits until the window
// resets (Ratelimit-Reset after the answer, or a whole minute when absent),
// then the bucket is refilled to X-Rate-Limit; the next answer corrects it.
// Before any answer with the headers it does not limit. Other clients of
// the same account share the budget, so a 429 can still happen; it is
// returned as a Transient error with its Retry-After, and the limiter
// holds every other request of the client until that Retry-After (a 429
// or 503 with one) has passed, so the client's other workers do not keep
// knocking meanwhile. A hold longer than the window fails the requests at
// once, unsent, with the time left as their retry hint, rather than
// parking every worker.
type limiter struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	known   bool
	limit   int
	tokens  int
	resetAt time.Time
	holdTil time.Time // no request before this (a Retry-After)
}

// errHeld is the error of a request the limiter refuses during a long hold.
var errHeld = errors.New("held back: Zendesk asked to wait (Retry-After)")

// wait blocks until a request may be sent, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		if held := l.holdTil.Sub(l.now()); held > 0 {
			l.mu.Unlock()
			if held > window {
				return errclass.RetryAfter(errHeld, held)
			}
			if err := l.sleep(ctx, held); err != nil {
				return err
			}
			continue
		}
		if !l.known || l.tokens > 0 {
			l.tokens--
			l.mu.Unlock()
			return nil
		}
		d := l.resetAt.Sub(l.now())
		if d <= 0 {
			l.tokens, l.resetAt = l.limit, l.now().Add(window)
			l.mu.Unlock()
			continue
		}
		l.mu.Unlock()
		if err := l.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// observe refills the bucket from a response's headers; answers without
// them change nothing.
func (l *limiter) observe(h http.Header) {
	limit, err1 := strconv.Atoi(h.Get("X-Rate-Limit"))
	rem, err2 := strconv.Atoi(h.Get("X-Rate-Limit-Remaining"))
	if err1 != nil || err2 != nil || limit <= 0 {
		return
	}
	reset := window
	if s, err := strconv.Atoi(h.Get("Ratelimit-Reset")); err == nil && s > 0 && s <= 60 {
		reset = time.Duration(s) * time.Second
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.known, l.limit, l.tokens, l.resetAt = true, limit, max(rem, 0), l.now().Add(reset)
}

// hold stops requests for d from now (a Retry-After); a shorter hold than
// one in force changes nothing.
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
