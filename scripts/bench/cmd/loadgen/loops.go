package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// sender performs request seq and classifies the outcome as a short code
// ("200", "503", "timeout", "puback", …); ok reports success. Implementations
// are safe for concurrent use.
type sender interface {
	send(ctx context.Context, seq uint64) (code string, ok bool)
}

// tally is what one worker observed; workers never share one, so recording
// needs no locks.
type tally struct {
	latencies []time.Duration // successful requests only
	codes     map[string]int
}

func newTally() *tally { return &tally{codes: make(map[string]int)} }

func (t *tally) record(code string, ok bool, latency time.Duration) {
	t.codes[code]++
	if ok {
		t.latencies = append(t.latencies, latency)
	}
}

// result is the merged outcome of one run.
type result struct {
	elapsed   time.Duration
	latencies []time.Duration
	codes     map[string]int
	ok        int
}

func merge(elapsed time.Duration, tallies []*tally) result {
	r := result{elapsed: elapsed, codes: make(map[string]int)}
	for _, t := range tallies {
		r.latencies = append(r.latencies, t.latencies...)
		for code, n := range t.codes {
			r.codes[code] += n
		}
	}
	r.ok = len(r.latencies)
	return r
}

// unsentCode marks open-loop requests still queued when the drain period
// ended; they count as errors.
const unsentCode = "unsent"

// openLoop offers rate requests/s for duration: request i is due at
// t0 + i/rate and its latency runs from that due time, whether or not a
// worker was free then. After the schedule, workers get drain to finish;
// requests not yet sent by then are counted as unsent and in-flight ones are
// cancelled.
func openLoop(ctx context.Context, s sender, rate float64, duration, drain time.Duration, workers int) result {
	n := uint64(rate * duration.Seconds())
	period := float64(time.Second) / rate
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(chan uint64, n) // the whole schedule fits: the generator never blocks
	t0 := time.Now()
	due := func(seq uint64) time.Time { return t0.Add(time.Duration(float64(seq) * period)) }

	tallies := make([]*tally, workers)
	var wg sync.WaitGroup
	for w := range tallies {
		t := newTally()
		tallies[w] = t
		wg.Go(func() {
			for seq := range jobs {
				if runCtx.Err() != nil {
					t.record(unsentCode, false, 0)
					continue
				}
				code, ok := s.send(runCtx, seq)
				t.record(code, ok, time.Since(due(seq)))
			}
		})
	}

	timer := time.NewTimer(0)
	defer timer.Stop()
schedule:
	for seq := range n {
		if d := time.Until(due(seq)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				// Interrupted: the rest of the schedule is never offered.
				break schedule
			}
		}
		jobs <- seq
	}
	close(jobs)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drainTimer := time.NewTimer(drain)
	defer drainTimer.Stop()
	select {
	case <-done:
	case <-drainTimer.C:
		cancel()
		<-done
	}
	return merge(time.Since(t0), tallies)
}

// closedLoop runs clients workers that each send the next request as soon
// as the previous one finished, for duration or until maxRequests were
// started. Latency is measured from the actual send.
func closedLoop(ctx context.Context, s sender, clients int, duration time.Duration, maxRequests int) result {
	runCtx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var next atomic.Uint64
	tallies := make([]*tally, clients)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range tallies {
		t := newTally()
		tallies[w] = t
		wg.Go(func() {
			for runCtx.Err() == nil {
				seq := next.Add(1) - 1
				if seq >= uint64(maxRequests) {
					return
				}
				start := time.Now()
				code, ok := s.send(ctx, seq) // in-flight requests finish after the deadline
				t.record(code, ok, time.Since(start))
			}
		})
	}
	wg.Wait()
	return merge(time.Since(t0), tallies)
}
