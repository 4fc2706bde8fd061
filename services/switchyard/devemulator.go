//go:build !nodev

package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"sync"

	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
)

// vendorErrorSeed seeds the emulators' draws of --vendor-errors, so a
// sequential run fails the same requests again.
const vendorErrorSeed = 1

// slackErrors fails the share p of the posts to sl with 429 (Retry-After)
// or 500, queued with sl.FailNext so the answer is the emulator's faithful
// one. HubSpot and Zendesk draw their own (FlakyRate); Slack's emulator
// has no rate of its own. Under concurrent posts a queued failure may go
// to another post than the one drawn for: the share is what counts.
func slackErrors(sl *slackemu.Server, p float64, seed uint64) http.Handler {
	if p <= 0 {
		return sl
	}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 0x51ac))
	statuses := []int{http.StatusTooManyRequests, http.StatusInternalServerError}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fail := rng.Float64() < p
		status := statuses[rng.IntN(len(statuses))]
		mu.Unlock()
		if fail {
			sl.FailNext(1, status)
		}
		sl.ServeHTTP(w, r)
	})
}

// durableEmulator answers a request that may change the emulator's account
// only once the account is saved with the change in it, as a vendor's 2xx
// means the change is stored. Without it a kill -9 of the dev hub lost up
// to a second of changes the services had been told were made: support's
// ledger in PostgreSQL held tickets the Zendesk emulator no longer had,
// and no retry would ever open them again.
//
// Saves are shared: every request that finished before a save began is
// answered by that save, so a burst costs a few saves, not one each. A
// save of the HubSpot or Zendesk emulator appends only the changed records
// to the state's journal (statefile.Journaled), so its cost follows the
// batch, not the account's history.
type durableEmulator struct {
	next http.Handler
	kept *statefile.Keeper

	mu      sync.Mutex
	waiting []chan error  // answered by the next save
	stopped bool          // Run has returned: each request saves itself
	kick    chan struct{} // capacity one: a save is wanted
}

func newDurableEmulator(next http.Handler, kept *statefile.Keeper) *durableEmulator {
	return &durableEmulator{next: next, kept: kept, kick: make(chan struct{}, 1)}
}

func (d *durableEmulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		d.next.ServeHTTP(w, r)
		return
	}
	held := &heldResponse{w: w, header: http.Header{}}
	d.next.ServeHTTP(held, r)
	if held.hijacked {
		return
	}
	if err := d.saved(r.Context()); err != nil {
		http.Error(w, "emulator state not saved: "+err.Error(), http.StatusInternalServerError)
		return
	}
	for k, v := range held.header {
		w.Header()[k] = v
	}
	if held.status == 0 {
		held.status = http.StatusOK
	}
	w.WriteHeader(held.status)
	_, _ = w.Write(held.body.Bytes())
}

// saved returns once a save that began after the call has finished.
func (d *durableEmulator) saved(ctx context.Context) error {
	done := make(chan error, 1)
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return d.kept.Save()
	}
	d.waiting = append(d.waiting, done)
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default: // a save is wanted already; it will take this waiter too
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run saves for the waiting requests until ctx ends; then the requests
// still waiting, and any after, save for themselves while the emulator
// drains.
func (d *durableEmulator) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			batch := d.waiting
			d.waiting, d.stopped = nil, true
			d.mu.Unlock()
			if len(batch) > 0 {
				err := d.kept.Save()
				for _, w := range batch {
					w <- err
				}
			}
			return nil
		case <-d.kick:
		}
		d.mu.Lock()
		batch := d.waiting
		d.waiting = nil
		d.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		err := d.kept.Save()
		for _, w := range batch {
			w <- err
		}
	}
}

// heldResponse keeps a handler's answer until it may be sent.
type heldResponse struct {
	w        http.ResponseWriter
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the Zendesk
// emulator's faults hijack it); a hijacked exchange has no answer to hold.
func (h *heldResponse) Unwrap() http.ResponseWriter {
	h.hijacked = true
	return h.w
}
