package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ratelimit"
)

// clock is a fake clock; sleeping on it advances it and records the wait.
type clock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

func (c *clock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// readTest reads test headers: Limit, Remaining, and optionally
// Window-Ms and Reset-Ms.
func readTest(h http.Header) (ratelimit.Budget, bool) {
	limit, err1 := strconv.Atoi(h.Get("Limit"))
	rem, err2 := strconv.Atoi(h.Get("Remaining"))
	if err1 != nil || err2 != nil {
		return ratelimit.Budget{}, false
	}
	b := ratelimit.Budget{Limit: limit, Remaining: rem}
	if ms, err := strconv.Atoi(h.Get("Window-Ms")); err == nil {
		b.Window = time.Duration(ms) * time.Millisecond
	}
	if ms, err := strconv.Atoi(h.Get("Reset-Ms")); err == nil {
		b.Reset = time.Duration(ms) * time.Millisecond
	}
	return b, true
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func newLimiter(t *testing.T, reserve float64) (*ratelimit.Limiter, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l, err := ratelimit.New(ratelimit.Config{Read: readTest, Window: 10 * time.Second, Reserve: reserve, Now: c.now, Sleep: c.sleep})
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func waitN(t *testing.T, l *ratelimit.Limiter, n int) {
	t.Helper()
	for i := range n {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := ratelimit.New(ratelimit.Config{Window: time.Second}); err == nil {
		t.Error("New without Read: no error")
	}
	if _, err := ratelimit.New(ratelimit.Config{Read: readTest}); err == nil {
		t.Error("New without Window: no error")
	}
}

func TestNoLimitBeforeTheHeaders(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, 0)
	waitN(t, l, 1000)
	l.Observe(http.Header{}) // an answer without the headers changes nothing
	l.Observe(headers("Limit", "0", "Remaining", "0"))
	waitN(t, l, 1000)
	if s := c.slept(); len(s) != 0 {
		t.Errorf("slept %v before any budget was reported", s)
	}
	if got, want := l.Window(), 10*time.Second; got != want {
		t.Errorf("Window() = %v, want the default %v", got, want)
	}
}

// The bucket spends what an answer reports, then waits for the reset and
// is refilled to the limit for one more window.
func TestPacesByTheReportedBudget(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, 0)
	l.Observe(headers("Limit", "5", "Remaining", "3", "Window-Ms", "60000", "Reset-Ms", "20000"))
	if got, want := l.Window(), time.Minute; got != want {
		t.Errorf("Window() = %v, want the reported %v", got, want)
	}
	waitN(t, l, 3)
	if s := c.slept(); len(s) != 0 {
		t.Fatalf("slept %v within the budget", s)
	}
	waitN(t, l, 1) // waits out the reset, then takes one of 5
	waitN(t, l, 4) // the rest of the refill
	waitN(t, l, 1) // waits a whole window
	want := []time.Duration{20 * time.Second, time.Minute}
	if s := c.slept(); len(s) != len(want) || s[0] != want[0] || s[1] != want[1] {
		t.Errorf("slept %v, want %v", s, want)
	}
}

// Without Reset or Window in the headers, the reset is one default window.
func TestDefaultsWindowAndReset(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, 0)
	l.Observe(headers("Limit", "2", "Remaining", "-3")) // less than 0 counts as 0
	waitN(t, l, 1)
	if s := c.slept(); len(s) != 1 || s[0] != 10*time.Second {
		t.Errorf("slept %v, want [10s]", s)
	}
}

// The reserve is kept unused: 10 % of 10 leaves 9 requests a window.
func TestKeepsTheReserve(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, 0.1)
	l.Observe(headers("Limit", "10", "Remaining", "10"))
	waitN(t, l, 9)
	if s := c.slept(); len(s) != 0 {
		t.Fatalf("slept %v before the reserve", s)
	}
	waitN(t, l, 1)
	if s := c.slept(); len(s) != 1 || s[0] != 10*time.Second {
		t.Errorf("slept %v, want [10s] at the reserve", s)
	}
}

func TestHold(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, 0)
	l.Hold(0) // nothing
	l.Hold(3 * time.Second)
	l.Hold(time.Second) // shorter than the hold in force: nothing
	waitN(t, l, 1)
	if s := c.slept(); len(s) != 1 || s[0] != 3*time.Second {
		t.Errorf("slept %v, want [3s]", s)
	}
}

// A hold longer than the window fails the request at once, unsent, with
// the time left as its retry hint.
func TestLongHoldFails(t *testing.T) {
	t.Parallel()
	errVendor := errors.New("held back: the test vendor asked to wait")
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l, err := ratelimit.New(ratelimit.Config{Read: readTest, Window: 10 * time.Second, Held: errVendor, Now: c.now, Sleep: c.sleep})
	if err != nil {
		t.Fatal(err)
	}
	l.Hold(time.Hour)
	err = l.Wait(context.Background())
	if !errors.Is(err, errVendor) {
		t.Fatalf("Wait = %v, want %v", err, errVendor)
	}
	if got := errclass.RetryHint(err); got != time.Hour {
		t.Errorf("retry hint %v, want 1h", got)
	}
	if !errclass.Of(err).Retryable() {
		t.Errorf("class %v, want retryable", errclass.Of(err))
	}
	if s := c.slept(); len(s) != 0 {
		t.Errorf("slept %v during a long hold", s)
	}
	// A reported window longer than the hold makes it one to wait out.
	l.Observe(headers("Limit", "5", "Remaining", "5", "Window-Ms", strconv.Itoa(int(2*time.Hour/time.Millisecond))))
	waitN(t, l, 1)
	if s := c.slept(); len(s) != 1 || s[0] != time.Hour {
		t.Errorf("slept %v, want [1h]", s)
	}
}

func TestWaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	l, _ := newLimiter(t, 0)
	l.Hold(5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
}

// Concurrent workers together send no more than the budget before a
// wait (run with -race).
func TestConcurrentWaiters(t *testing.T) {
	t.Parallel()
	l, c := newLimiter(t, 0)
	l.Observe(headers("Limit", "50", "Remaining", "50"))
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { waitN(t, l, 5) })
	}
	wg.Wait()
	if s := c.slept(); len(s) != 0 {
		t.Errorf("slept %v within the budget", s)
	}
	waitN(t, l, 1)
	if s := c.slept(); len(s) != 1 {
		t.Errorf("slept %v, want one wait once the budget is spent", s)
	}
}
