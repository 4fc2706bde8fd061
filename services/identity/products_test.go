package identity_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/services/identity"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingLookup answers every lookup with answer and counts them.
type countingLookup struct {
	calls  atomic.Int64
	answer func(ctx context.Context, productID string) (string, error)
}

func (l *countingLookup) lookup(ctx context.Context, productID string) (string, error) {
	l.calls.Add(1)
	return l.answer(ctx, productID)
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func debugLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Concurrent misses for one product wait for one lookup.
func TestProductNamesAskOncePerProduct(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	l := &countingLookup{answer: func(context.Context, string) (string, error) {
		<-release
		return "Switchyard Pro", nil
	}}
	p := identity.NewProductNames(l.lookup, slog.New(slog.DiscardHandler), time.Now, 10, time.Minute)

	const callers = 50
	var entered atomic.Int64
	names := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			entered.Add(1)
			names[i] = p.Name(context.Background(), "prod_a")
		})
	}
	testkit.WaitFor(t, 5*time.Second, "every caller to ask while the lookup is in flight", func() bool {
		return entered.Load() == callers && l.calls.Load() == 1
	})
	close(release)
	wg.Wait()
	for i, n := range names {
		if n != "Switchyard Pro" {
			t.Fatalf("caller %d got %q", i, n)
		}
	}
	if got := p.Name(context.Background(), "prod_a"); got != "Switchyard Pro" || l.calls.Load() != 1 {
		t.Errorf("cached: name %q after %d lookups, want one lookup for %d callers", got, l.calls.Load(), callers+1)
	}
	p.Name(context.Background(), "prod_b")
	if l.calls.Load() != 2 {
		t.Errorf("another product: %d lookups, want 2", l.calls.Load())
	}
}

// A name is kept for the TTL, then asked for again.
func TestProductNamesExpire(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1698249660, 0)}
	var version atomic.Int64
	l := &countingLookup{answer: func(context.Context, string) (string, error) {
		return fmt.Sprintf("Pro v%d", version.Add(1)), nil
	}}
	p := identity.NewProductNames(l.lookup, slog.New(slog.DiscardHandler), clk.Now, 10, time.Minute)
	ctx := context.Background()
	if got := p.Name(ctx, "prod_a"); got != "Pro v1" {
		t.Fatalf("name %q", got)
	}
	clk.Advance(identity.ProductNameTTL - time.Second)
	if got := p.Name(ctx, "prod_a"); got != "Pro v1" || l.calls.Load() != 1 {
		t.Fatalf("within the TTL: %q after %d lookups, want Pro v1 after 1", got, l.calls.Load())
	}
	clk.Advance(time.Second)
	if got := p.Name(ctx, "prod_a"); got != "Pro v2" || l.calls.Load() != 2 {
		t.Fatalf("after the TTL: %q after %d lookups, want the renamed Pro v2 after 2", got, l.calls.Load())
	}
}

// After a failed lookup the product goes without a name, and Stripe is not
// asked again, for a minute or for as long as Stripe's Retry-After says;
// the failure is logged at warn level once per product per TTL.
func TestProductNamesFailureWaitsBeforeAskingAgain(t *testing.T) {
	t.Parallel()
	tooMany := errclass.FromHTTP(http.StatusTooManyRequests, http.Header{"Retry-After": {"300"}}, errors.New("Stripe answered 429 rate_limit"))
	tests := []struct {
		name      string
		err       error
		wantRetry time.Duration
	}{
		{"500", errclass.Transient(errors.New("Stripe answered 500 api_error")), identity.ProductRetryIn},
		{"404", errclass.Permanent(errors.New("Stripe answered 404 resource_missing")), identity.ProductRetryIn},
		{"429 with Retry-After longer than a minute", tooMany, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{t: time.Unix(1698249660, 0)}
			failing := true
			l := &countingLookup{answer: func(context.Context, string) (string, error) {
				if failing {
					return "", tt.err
				}
				return "Switchyard Pro", nil
			}}
			p := identity.NewProductNames(l.lookup, slog.New(slog.DiscardHandler), clk.Now, 10, time.Minute)
			ctx := context.Background()
			if got := p.Name(ctx, "prod_a"); got != "" {
				t.Fatalf("failed lookup gave %q", got)
			}
			clk.Advance(tt.wantRetry - time.Second)
			failing = false
			if got := p.Name(ctx, "prod_a"); got != "" || l.calls.Load() != 1 {
				t.Fatalf("before the wait is over: %q after %d lookups, want no name and no new lookup", got, l.calls.Load())
			}
			clk.Advance(time.Second)
			if got := p.Name(ctx, "prod_a"); got != "Switchyard Pro" || l.calls.Load() != 2 {
				t.Fatalf("after the wait: %q after %d lookups, want the name after 2", got, l.calls.Load())
			}
		})
	}

	t.Run("warned once per TTL", func(t *testing.T) {
		t.Parallel()
		clk := &fakeClock{t: time.Unix(1698249660, 0)}
		var logs syncBuffer
		l := &countingLookup{answer: func(context.Context, string) (string, error) {
			return "", errclass.Transient(errors.New("Stripe answered 503"))
		}}
		p := identity.NewProductNames(l.lookup, debugLogger(&logs), clk.Now, 10, time.Minute)
		for range 61 { // one lookup a minute for an hour
			p.Name(context.Background(), "prod_a")
			clk.Advance(identity.ProductRetryIn)
		}
		warns, debugs := strings.Count(logs.String(), "level=WARN"), strings.Count(logs.String(), "level=DEBUG")
		if l.calls.Load() != 61 || warns != 2 || debugs != 59 {
			t.Errorf("%d lookups, %d warnings, %d debug lines; want 61, 2 (at the start and after an hour), 59:\n%s", l.calls.Load(), warns, debugs, logs.String())
		}
		if !strings.Contains(logs.String(), "product_id=prod_a") {
			t.Errorf("the log does not name the product:\n%s", logs.String())
		}
	})
}

// A lookup that does not answer in time leaves the name out and counts as
// a failure; a caller that goes away (shutdown) does not.
func TestProductNamesTimeout(t *testing.T) {
	t.Parallel()
	l := &countingLookup{answer: func(ctx context.Context, _ string) (string, error) {
		<-ctx.Done()
		return "", errclass.Transient(ctx.Err())
	}}
	p := identity.NewProductNames(l.lookup, slog.New(slog.DiscardHandler), time.Now, 10, 50*time.Millisecond)
	if got := p.Name(context.Background(), "prod_slow"); got != "" {
		t.Fatalf("name %q from a lookup that never answers", got)
	}
	if p.Name(context.Background(), "prod_slow"); l.calls.Load() != 1 {
		t.Errorf("%d lookups, want 1: a timeout waits like any failure", l.calls.Load())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Name(ctx, "prod_shutdown")
	p.Name(context.Background(), "prod_shutdown")
	if l.calls.Load() != 3 {
		t.Errorf("%d lookups, want 3: a lookup cut short by its caller is asked again", l.calls.Load())
	}
}

// The cache holds at most its size; the expired go first, then the
// soonest to expire.
func TestProductNamesAreBounded(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1698249660, 0)}
	l := &countingLookup{answer: func(_ context.Context, id string) (string, error) { return "Name of " + id, nil }}
	p := identity.NewProductNames(l.lookup, slog.New(slog.DiscardHandler), clk.Now, 3, time.Minute)
	for i := range 10 {
		p.Name(context.Background(), fmt.Sprintf("prod_%d", i))
		clk.Advance(time.Second)
	}
	if p.Len() != 3 {
		t.Fatalf("holds %d products, want 3", p.Len())
	}
	for _, id := range []string{"prod_7", "prod_8", "prod_9"} { // the newest stay
		if got := p.Name(context.Background(), id); got != "Name of "+id {
			t.Errorf("%s: %q", id, got)
		}
	}
	if l.calls.Load() != 10 {
		t.Errorf("%d lookups, want 10: the three newest are still cached", l.calls.Load())
	}
}
