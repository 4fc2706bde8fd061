package crm

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// recorder is an Upserter that keeps every call's emails.
type recorder struct {
	mu    sync.Mutex
	calls [][]string
	at    []time.Time
}

func (r *recorder) UpsertContacts(_ context.Context, in []hubspot.ContactInput) ([]hubspot.ContactResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var emails []string
	out := make([]hubspot.ContactResult, len(in))
	for i, c := range in {
		emails = append(emails, c.Email+"#"+c.Properties["n"])
		out[i] = hubspot.ContactResult{Email: c.Email, ID: fmt.Sprint(len(r.calls)*1000 + i)}
	}
	r.calls = append(r.calls, emails)
	r.at = append(r.at, time.Now())
	return out, nil
}

// TestBatcherClosesWhenEveryCallerIsIn: with as many callers as the batch
// holds, three of them updating one email, the first call goes out as soon
// as every caller's update is in — not after the linger — and no call
// carries an email twice, the updates of one email in the order they came
// (the held ones then wait the linger for company, one call each). In a
// synctest bubble: time only moves when every goroutine waits, so a wait
// on the linger shows as an hour gone by.
func TestBatcherClosesWhenEveryCallerIsIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		b := newBatcher(rec, 6, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		start := time.Now()
		emails := []string{"a@x.io", "dup@x.io", "b@x.io", "dup@x.io", "c@x.io", "dup@x.io"}
		var wg sync.WaitGroup
		for i, e := range emails {
			wg.Go(func() {
				if _, err := b.Upsert(ctx, hubspot.ContactInput{Email: e, Properties: map[string]string{"n": fmt.Sprint(i)}}); err != nil {
					t.Error(err)
				}
			})
			synctest.Wait() // taken by the batcher before the next one comes
		}
		wg.Wait()
		if len(rec.at) != 3 || rec.at[0] != start || rec.at[1] != start.Add(time.Hour) || rec.at[2] != start.Add(2*time.Hour) {
			t.Errorf("calls at %v (from %v): want the first at once, though the linger is an hour, then one held update an hour apart", rec.at, start)
		}
		var dupOrder []string
		total := 0
		for _, call := range rec.calls {
			seen := map[string]bool{}
			for _, e := range call {
				email, _, _ := strings.Cut(e, "#")
				if seen[email] {
					t.Errorf("one call carries %s twice: %v", email, call)
				}
				seen[email] = true
				if email == "dup@x.io" {
					dupOrder = append(dupOrder, e)
				}
				total++
			}
		}
		if total != len(emails) {
			t.Errorf("%d updates sent in %v, want %d", total, rec.calls, len(emails))
		}
		if strings.Join(dupOrder, " ") != "dup@x.io#1 dup@x.io#3 dup@x.io#5" {
			t.Errorf("updates of one email out of order: %v (calls %v)", dupOrder, rec.calls)
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
	})
}

// TestBatcherLingersForCompany: a lone update waits the linger for others,
// then goes out alone.
func TestBatcherLingersForCompany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		b := newBatcher(rec, 6, 150*time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- b.Run(ctx) }()
		start := time.Now()
		if _, err := b.Upsert(ctx, hubspot.ContactInput{Email: "solo@x.io", Properties: map[string]string{"n": "0"}}); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 150*time.Millisecond {
			t.Errorf("a lone update waited %v, want the 150ms linger", waited)
		}
		if len(rec.calls) != 1 || len(rec.calls[0]) != 1 {
			t.Errorf("calls: %v", rec.calls)
		}
		cancel()
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
	})
}
