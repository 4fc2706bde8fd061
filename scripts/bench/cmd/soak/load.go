package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripefixture"
)

// laterGap is the least time between two events of one customer, and
// between a delivery and its duplicate. One gap for both keeps the queue of
// later deliveries in due order.
const laterGap = time.Second

// delivery is one POST of an event; dup marks a second delivery.
type delivery struct {
	ev  event
	dup bool
}

// later is a customer's next event (or a duplicate) waiting for its time.
type later struct {
	due    time.Time
	events []event // the customer's remaining events; events[0] is next
	dup    bool    // a duplicate of events[0] alone
}

// scheduler decides what the next delivery is: a due later one, else a
// new customer's first event. It is used by one goroutine.
type scheduler struct {
	gen        *lifecycles
	customers  int
	duplicates float64
	rng        *rand.Rand
	queue      []later // due order (one gap for all)
}

func (s *scheduler) next(now time.Time) delivery {
	var l later
	if len(s.queue) > 0 && !s.queue[0].due.After(now) {
		l = s.queue[0]
		s.queue = s.queue[1:]
	} else {
		l = later{events: s.gen.customer(s.customers)}
		s.customers++
	}
	d := delivery{ev: l.events[0], dup: l.dup}
	if l.dup {
		return d
	}
	if len(l.events) > 1 {
		s.queue = append(s.queue, later{due: now.Add(laterGap), events: l.events[1:]})
	}
	if s.rng.Float64() < s.duplicates {
		s.queue = append(s.queue, later{due: now.Add(laterGap), events: l.events[:1], dup: true})
	}
	return d
}

// pending is the number of deliveries still waiting for their time.
func (s *scheduler) pending() int {
	n := 0
	for _, l := range s.queue {
		if l.dup {
			n++
		} else {
			n += len(l.events)
		}
	}
	return n
}

// expected is what the hub must end up with, counted from the deliveries
// the gateway accepted.
type expected struct {
	events      int            // distinct Stripe events
	customers   int            // customer.created: HubSpot contacts
	tickets     map[string]int // by support rule (the ticket's tag)
	dups        int            // duplicate deliveries accepted
	undelivered int            // deliveries never accepted, after retries
}

func (e expected) ticketTotal() int {
	n := 0
	for _, v := range e.tickets {
		n += v
	}
	return n
}

// load offers the deliveries at the configured rate from a pool of
// workers, and counts what the gateway answered.
type load struct {
	cfg    config
	sched  *scheduler
	client *http.Client
	url    string
	secret string

	delivered, retries, undelivered atomic.Int64

	mu       sync.Mutex
	exp      expected
	statuses map[string]int
	left     int // deliveries scheduled but not offered when the load ended
}

func newLoad(cfg config, gen *lifecycles, url, secret string) *load {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.workers,
		MaxIdleConnsPerHost: cfg.workers,
		IdleConnTimeout:     90 * time.Second,
	}
	return &load{
		cfg:      cfg,
		sched:    &scheduler{gen: gen, duplicates: cfg.duplicates, rng: rand.New(rand.NewPCG(7, 7))},
		client:   &http.Client{Transport: transport, Timeout: 10 * time.Second},
		url:      url,
		secret:   secret,
		exp:      expected{tickets: map[string]int{}},
		statuses: map[string]int{},
	}
}

// run offers cfg.rate deliveries a second for cfg.duration (delivery i is
// due at t0 + i/rate: a slow moment is caught up, not dropped), then
// delivers what is still queued for customers already started, so every
// lifecycle is whole, and waits for the workers.
func (l *load) run(ctx context.Context) {
	jobs := make(chan delivery, l.cfg.workers)
	var wg sync.WaitGroup
	for range l.cfg.workers {
		wg.Go(func() {
			for d := range jobs {
				l.deliver(ctx, d)
			}
		})
	}
	period := time.Duration(float64(time.Second) / l.cfg.rate)
	t0 := time.Now()
	end := t0.Add(l.cfg.duration)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		due := t0.Add(time.Duration(i) * period)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- l.sched.next(time.Now())
	}
	// The lifecycles under way finish: their remaining events go out as
	// they come due.
	for ctx.Err() == nil && len(l.sched.queue) > 0 {
		if d := time.Until(l.sched.queue[0].due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				continue
			}
		}
		jobs <- l.sched.next(time.Now())
	}
	l.mu.Lock()
	l.left = l.sched.pending()
	l.mu.Unlock()
	close(jobs)
	wg.Wait()
}

// deliver posts d until the gateway accepts it, as Stripe retries, up to
// 8 attempts over about a minute.
func (l *load) deliver(ctx context.Context, d delivery) {
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		code, ok := l.post(ctx, d.ev.body)
		l.mu.Lock()
		l.statuses[code]++
		if ok {
			if d.dup {
				l.exp.dups++
			} else {
				l.exp.events++
				if d.ev.typ == "customer.created" {
					l.exp.customers++
				}
				if d.ev.ticketRule != "" {
					l.exp.tickets[d.ev.ticketRule]++
				}
			}
		}
		l.mu.Unlock()
		if ok {
			l.delivered.Add(1)
			return
		}
		if attempt == 8 || ctx.Err() != nil {
			l.undelivered.Add(1)
			return
		}
		l.retries.Add(1)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 16*time.Second)
	}
}

// post signs body at send time and posts it; code is the HTTP status or
// a short transport error.
func (l *load) post(ctx context.Context, body []byte) (code string, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return "request_error", false
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	req.Header.Set("Stripe-Signature", stripefixture.SignatureHeader(l.secret, time.Now().Unix(), body))
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "canceled", false
		}
		return "conn_error", false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return strconv.Itoa(resp.StatusCode), resp.StatusCode/100 == 2
}

// expected is a copy of the counts so far; with undelivered set.
func (l *load) expected() expected {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.exp
	e.tickets = make(map[string]int, len(l.exp.tickets))
	for k, v := range l.exp.tickets {
		e.tickets[k] = v
	}
	e.undelivered = int(l.undelivered.Load()) + l.left
	return e
}

func (l *load) summary() string {
	e := l.expected()
	l.mu.Lock()
	codes := make([]string, 0, len(l.statuses))
	for c, n := range l.statuses {
		codes = append(codes, fmt.Sprintf("%s×%d", c, n))
	}
	l.mu.Unlock()
	sort.Strings(codes)
	return fmt.Sprintf("%d distinct events of %d customers and %d duplicates accepted, %d retries, %d never accepted; answers %s",
		e.events, e.customers, e.dups, l.retries.Load(), e.undelivered, strings.Join(codes, " "))
}
