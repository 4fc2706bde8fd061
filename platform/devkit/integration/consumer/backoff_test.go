package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
)

var defaultSchedule = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// seeded is a fixed random source, so every run draws the same delays.
func seeded(seed uint64) func() float64 { return rand.New(rand.NewPCG(seed, seed)).Float64 }

func TestBackoffDelayStaysWithinJitterOfTheSchedule(t *testing.T) {
	t.Parallel()
	const f = consumer.DefaultJitter
	b := consumer.Backoff{Schedule: defaultSchedule, Jitter: f, Max: time.Hour, Rand: seeded(1)}
	for attempt := 1; attempt <= 8; attempt++ {
		base := defaultSchedule[min(attempt, len(defaultSchedule))-1]
		lo, hi := time.Duration(float64(base)*(1-f)), time.Duration(float64(base)*(1+f))
		for range 1000 {
			if got := b.Delay(attempt, 0); got < lo || got > hi {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, got, lo, hi)
			}
		}
	}
}

func TestBackoffDelayGrowsPerAttempt(t *testing.T) {
	t.Parallel()
	// Whatever the draws, attempt n+1 waits longer than attempt n: the
	// default schedule grows faster than the jitter can blur.
	for seed := range uint64(200) {
		b := consumer.Backoff{Schedule: defaultSchedule, Jitter: consumer.DefaultJitter, Max: time.Hour, Rand: seeded(seed)}
		prev := time.Duration(0)
		for attempt := 1; attempt <= len(defaultSchedule); attempt++ {
			got := b.Delay(attempt, 0)
			if got <= prev {
				t.Fatalf("seed %d: attempt %d waits %v, attempt %d waited %v: want growth", seed, attempt, got, attempt-1, prev)
			}
			prev = got
		}
	}
}

func TestBackoffDelayHonoursRetryAfterAndCap(t *testing.T) {
	t.Parallel()
	const f = consumer.DefaultJitter
	tests := []struct {
		name     string
		attempt  int
		hint     time.Duration
		min, max time.Duration
	}{
		{name: "hint above the schedule is a floor", attempt: 1, hint: 7 * time.Second, min: 7 * time.Second, max: time.Duration(7 * float64(time.Second) * (1 + f))},
		{name: "hint below the schedule changes nothing", attempt: 3, hint: 7 * time.Second, min: time.Duration(30 * float64(time.Second) * (1 - f)), max: time.Duration(30 * float64(time.Second) * (1 + f))},
		{name: "hint just under the cap", attempt: 1, hint: 59 * time.Minute, min: 59 * time.Minute, max: time.Hour},
		{name: "hint beyond the cap is capped", attempt: 1, hint: 12 * time.Hour, min: time.Hour, max: time.Hour},
		{name: "schedule beyond the cap is capped", attempt: 9, hint: 0, min: time.Duration(float64(time.Hour) * (1 - f)), max: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			schedule := defaultSchedule
			if tt.attempt == 9 {
				schedule = []time.Duration{2 * time.Hour}
			}
			b := consumer.Backoff{Schedule: schedule, Jitter: f, Max: time.Hour, Rand: seeded(7)}
			for range 1000 {
				if got := b.Delay(tt.attempt, tt.hint); got < tt.min || got > tt.max {
					t.Fatalf("delay %v outside [%v, %v]", got, tt.min, tt.max)
				}
			}
		})
	}
}

func TestBackoffWithoutJitterIsTheSchedule(t *testing.T) {
	t.Parallel()
	b := consumer.Backoff{Schedule: defaultSchedule, Max: time.Hour}
	for attempt, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 5 * time.Second, 5: 10 * time.Minute, 6: 10 * time.Minute} {
		if got := b.Delay(attempt, 0); got != want {
			t.Errorf("attempt %d: got %v, want %v", attempt, got, want)
		}
	}
	if got := b.Delay(1, 7*time.Second); got != 7*time.Second {
		t.Errorf("with a 7s hint: got %v, want 7s", got)
	}
}

func TestBackoffSpreadsABurstOfFailures(t *testing.T) {
	t.Parallel()
	// 100 messages that failed together, with and without a Retry-After:
	// drawn from the real random source, they must not come back together.
	b := consumer.Backoff{Schedule: defaultSchedule, Jitter: consumer.DefaultJitter, Max: time.Hour}
	for _, hint := range []time.Duration{0, 10 * time.Second} {
		seen := map[time.Duration]bool{}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 100 {
			d := b.Delay(1, hint)
			seen[d] = true
			lo, hi = min(lo, d), max(hi, d)
		}
		if len(seen) < 90 {
			t.Errorf("hint %v: %d distinct delays among 100, want them spread", hint, len(seen))
		}
		if hi-lo < time.Second/10 {
			t.Errorf("hint %v: delays span only %v (%v..%v), want a window", hint, hi-lo, lo, hi)
		}
	}
}

// TestBurstOfFailuresIsRetriedSpreadOut: through the consumer itself, 100
// messages failing at once are naked with different delays (OnFailure
// hears each retry's due time), not all after exactly the scheduled one.
func TestBurstOfFailuresIsRetriedSpreadOut(t *testing.T) {
	e := setup(t)
	const n = 100
	var mu sync.Mutex
	delays := map[string]time.Duration{}
	onFailure := func(_ context.Context, m *consumer.Message, _ errclass.Class, _ string, retryAt time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := delays[m.ID]; !ok && !retryAt.IsZero() {
			delays[m.ID] = time.Until(retryAt)
		}
	}
	// A long schedule, so no retry comes back while the test looks, and a
	// Retry-After shorter than it, so the schedule rules.
	e.start(t, consumer.Config{Name: "burst", Subjects: []string{"billing.test.>"}, Workers: 16, Backoff: []time.Duration{time.Minute}, OnFailure: onFailure},
		func(ctx context.Context, m *consumer.Message) error {
			return errclass.RetryAfter(errors.New("vendor 503"), time.Second)
		})
	for i := range n {
		e.publish(t, "billing.test.burst", fmt.Sprintf("b%03d", i), "{}")
	}
	testkit.WaitFor(t, 20*time.Second, "every message to fail once", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delays) == n
	})
	mu.Lock()
	defer mu.Unlock()
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for _, d := range delays {
		lo, hi = min(lo, d), max(hi, d)
	}
	// Without jitter every delay would be 1 minute less the few
	// milliseconds between the nak and the check: a spread of well under
	// a second. With ±25 % it spans most of 45 s..75 s.
	if hi-lo < 10*time.Second {
		t.Errorf("retry delays span %v (%v..%v): a burst that failed together retries together", hi-lo, lo, hi)
	}
	if lo < 44*time.Second || hi > 76*time.Second {
		t.Errorf("retry delays %v..%v, want within 1m ±25%%", lo, hi)
	}
}
