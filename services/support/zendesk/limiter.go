package zendesk

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"
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
// returned as a Transient error with its Retry-After.
type limiter struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	known   bool
	limit   int
	tokens  int
	resetAt time.Time
}

// wait blocks until a request may be sent, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	for {
		l.mu.Lock()
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
