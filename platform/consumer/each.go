package consumer

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/switchyard/switchyard/platform/errclass"
)

// Each makes a BatchHandler of a message handler: the messages of a pull
// are handled side by side, at most limit at once, each under its own
// context (Message.Context) and settled by its own outcome, as New's
// workers would. What it adds is that they start together: the effects
// of one pull then share what gathers concurrent callers (a ledger's
// claim groups, a vendor batch), where New's workers, pulling a message
// each as they come free, start one at a time. A consumer of a handler
// that may wait on a vendor sets Config.Pull to one Batch (see Config.SideBySide), so
// at most one pull waits unattended while its workers are parked.
func Each(h Handler, limit int) BatchHandler {
	limit = max(limit, 1)
	return func(ctx context.Context, ms []*Message) error {
		res := make(Results, len(ms))
		sem := make(chan struct{}, limit)
		var wg sync.WaitGroup
		for i, m := range ms {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				start := time.Now()
				res[i] = callOne(m.Context(ctx), h, m)
				m.took = max(time.Since(start), time.Nanosecond)
			}()
		}
		wg.Wait()
		for _, err := range res {
			if err != nil {
				return res
			}
		}
		return nil
	}
}

// SideBySide returns c set for a handler run through Each that may handle
// workers messages at once: Workers two pulls of Batch, half as many
// (rounded up), so that one pull is handled while the other's slowest
// message ends (one pull for a single worker), and Pull one Batch, one
// pull read ahead. Each's limit is then the returned Batch.
func (c Config) SideBySide(workers int) Config {
	workers = max(workers, 1)
	c.Workers = min(workers, 2)
	c.Batch = (workers + c.Workers - 1) / c.Workers
	c.Pull = c.Batch
	return c
}

// callOne runs h for m, turning a panic into m's permanent error (the
// consumer's own recovery covers only the goroutine that called the batch
// handler); the consumer logs its stack, which stays out of the reason.
func callOne(ctx context.Context, h Handler, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errclass.Permanent(&panicError{value: r, stack: debug.Stack()})
		}
	}()
	return h(ctx, m)
}

// panicError is a handler's panic in Each.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("handler panic: %v", p.value) }
