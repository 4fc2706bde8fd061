package crm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// virtualClock is the emulator's and the client's clock: it moves only when
// the client's rate limiter sleeps, so HubSpot's ten-second windows pass in
// no time and exactly. Only one call is in flight at a time (the batcher
// sends them one after another), so no sleep overlaps another.
type virtualClock struct {
	mu       sync.Mutex
	now      time.Time
	requests func() int // requests sent so far
	// sentBySleep is requests() when the clock last moved: the requests of
	// the windows before the current one.
	sentBySleep int
}

func (c *virtualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *virtualClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	if c.requests != nil {
		c.sentBySleep = c.requests()
	}
	c.mu.Unlock()
	return ctx.Err()
}

// windows is how many rate-limit windows (of length w) the requests since
// start used: the whole ones the clock moved through, and the share of one
// the requests since the last move took (against the whole windows'
// average), so a run that ends early in a window is not charged all of it.
func (c *virtualClock) windows(start time.Time, w time.Duration) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	whole := float64(c.now.Sub(start) / w)
	if whole == 0 || c.sentBySleep == 0 {
		return 1
	}
	return whole + float64(c.requests()-c.sentBySleep)/(float64(c.sentBySleep)/whole)
}

// handlerTransport serves the client's requests with an http.Handler in
// memory.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// inputCounter counts the inputs of the batch upserts it passes on.
type inputCounter struct {
	next http.Handler
	mu   sync.Mutex
	n    int // inputs
	reqs int // requests, any endpoint
}

func (c *inputCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.reqs++
	c.mu.Unlock()
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/batch/upsert") {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		var body struct {
			Inputs []json.RawMessage `json:"inputs"`
		}
		if json.Unmarshal(raw, &body) == nil {
			c.mu.Lock()
			c.n += len(body.Inputs)
			c.mu.Unlock()
		}
	}
	c.next.ServeHTTP(w, r)
}

func (c *inputCounter) reset()        { c.mu.Lock(); c.n = 0; c.mu.Unlock() }
func (c *inputCounter) inputs() int   { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
func (c *inputCounter) requests() int { c.mu.Lock(); defer c.mu.Unlock(); return c.reqs }

// BenchmarkContactUpdatesUnderPlanLimit syncs b.N billing events through
// Syncer.Handle (ledger, batcher, hubspot.Client, outcome and all) against
// the HubSpot emulator at its default limit, the smallest plan's 100
// requests per rolling 10 seconds (the client keeps 10 % in reserve: 90),
// on a virtual clock. The events come as Stripe sends a new customer's:
// created, subscription started, invoice paid, one after the other in the
// stream, handled as the consumer hands them out: CRM_WORKERS' default 64
// events at once, in two pulls of 32. "hold" is the batcher
// before coalescing (a second update of a contact waits for the next
// call); "coalesce" merges it into the contact's input. It reports
// requests/update, inputs/request and updates/min: updates over the
// ten-second windows they used (run a multiple of a window's worth, e.g.
// -benchtime 15000x, for the steady rate). A call carries the updates of
// the pulls being handled (two of 32), so coalescing's ceiling here is 64
// updates a request.
func BenchmarkContactUpdatesUnderPlanLimit(b *testing.B) {
	ctx := context.Background()
	pulls := consumer.Config{}.SideBySide(64) // CRM_WORKERS' default, as run.go splits it
	js, l := syncerDeps(b, pulls.Workers*pulls.Batch)
	for _, mode := range []struct {
		name     string
		coalesce bool
	}{{"hold", false}, {"coalesce", true}} {
		b.Run(mode.name, func(b *testing.B) {
			clock := &virtualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			start := clock.Now()
			hub := hubspotemu.New(hubspotemu.Options{Tokens: map[string][]string{"pat-bench": nil}, Now: clock.Now})
			counted := &inputCounter{next: hub}
			clock.requests = counted.requests
			client, err := hubspot.New(hubspot.Config{BaseURL: "http://hubspot.test", Token: config.NewSecret("pat-bench"),
				HTTPClient: &http.Client{Transport: handlerTransport{counted}}, Now: clock.Now, Sleep: clock.Sleep})
			if err != nil {
				b.Fatal(err)
			}
			if err := client.EnsureProperties(ctx, hubspot.DefaultProperties()); err != nil {
				b.Fatal(err)
			}
			s := NewSyncer(client, 150*time.Millisecond, l, js, ConsumerName, slog.New(slog.DiscardHandler))
			s.batch.coalesce = mode.coalesce
			msgs := customerEvents(b, b.N)
			before := hub.Requests()[hubspotemu.EndpointBatchUpsert]
			counted.reset()
			rctx, stop := context.WithCancel(ctx)
			ran := make(chan error, 1)
			go func() { ran <- s.Run(rctx) }()
			next := make(chan []*consumer.Message)
			var wg sync.WaitGroup
			b.ResetTimer()
			for range pulls.Workers {
				wg.Go(func() {
					for ms := range next {
						// Failed messages are retried as the consumer would.
						for attempt := 1; len(ms) > 0; attempt++ {
							for _, m := range ms {
								m.Attempt = attempt
							}
							var failed []*consumer.Message
							var each consumer.Results
							if err := s.HandleBatch(ctx, ms); errors.As(err, &each) {
								for i, err := range each {
									if err != nil {
										failed = append(failed, ms[i])
									}
								}
							} else if err != nil {
								b.Fatal(err)
							}
							if len(failed) > 0 && attempt > 10 {
								b.Error(each)
								break
							}
							ms = failed
						}
					}
				})
			}
			for len(msgs) > 0 {
				n := min(pulls.Batch, len(msgs))
				next <- msgs[:n]
				msgs = msgs[n:]
			}
			close(next)
			wg.Wait()
			b.StopTimer()
			stop()
			if err := <-ran; err != nil {
				b.Fatal(err)
			}
			customers := (b.N + 2) / 3
			if n := len(hub.Contacts()); n != customers {
				b.Fatalf("%d contacts, want %d", n, customers)
			}
			for _, c := range hub.Contacts() {
				if c.Properties["switchyard_last_payment_status"] != "succeeded" && b.N%3 == 0 {
					b.Fatalf("contact %s lacks the paid invoice: %v", c.ID, c.Properties)
				}
			}
			requests := hub.Requests()[hubspotemu.EndpointBatchUpsert] - before
			windows := clock.windows(start, hubspotemu.RateLimitInterval)
			b.ReportMetric(float64(requests)/float64(b.N), "requests/update")
			b.ReportMetric(float64(counted.inputs())/float64(requests), "inputs/request")
			b.ReportMetric(float64(b.N)/(windows*hubspotemu.RateLimitInterval.Minutes()), "updates/min")
		})
	}
}

var (
	benchRun       = time.Now().UnixNano() // keeps message ids apart across runs sharing a store
	benchCustomers atomic.Int64            // and across the runs of one
)

// customerEvents is n billing events in stream order: each customer's
// created, subscription started and invoice paid, one after the other.
func customerEvents(b testing.TB, n int) []*consumer.Message {
	b.Helper()
	plan := &billingv1.Plan{PriceId: "price_pro", ProductName: "Pro", Mrr: 4900, Currency: "usd"}
	msgs := make([]*consumer.Message, 0, n)
	for len(msgs) < n {
		i := benchCustomers.Add(1)
		meta := func(kind string) *billingv1.EventMeta {
			id := fmt.Sprintf("billing.%s:bench%d_%d", kind, benchRun, i)
			return &billingv1.EventMeta{EventId: id, CanonicalCustomerId: fmt.Sprintf("cust_%d", i), SourceEventIds: []string{"evt_" + id},
				OccurredAt: timestamppb.Now(), StripeCustomerId: fmt.Sprintf("cus_%d", i), Email: fmt.Sprintf("customer%d@example.com", i)}
		}
		for _, ev := range []subjects.BillingEvent{
			&billingv1.CustomerUpserted{Meta: meta("customer.upserted"), Email: fmt.Sprintf("customer%d@example.com", i), Name: "Ada Lovelace"},
			&billingv1.SubscriptionStarted{Meta: meta("subscription.started"), Subscription: &billingv1.Subscription{
				SubscriptionId: fmt.Sprintf("sub_%d", i), Status: billingv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE, Plan: plan}},
			&billingv1.PaymentSucceeded{Meta: meta("payment.succeeded"), InvoiceId: fmt.Sprintf("in_%d", i), Amount: 4900, Currency: "usd"},
		}[:min(3, n-len(msgs))] {
			subject, err := subjects.Of(ev)
			if err != nil {
				b.Fatal(err)
			}
			data, err := proto.Marshal(ev)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, &consumer.Message{Subject: subject, Data: data, ID: ev.GetMeta().GetEventId()})
		}
	}
	return msgs
}
