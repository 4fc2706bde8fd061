package support_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/support"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

// virtualClock is the emulator's and the client's clock: it moves only when
// the client's rate limiter sleeps, so minutes of Zendesk's per-minute
// budget pass in milliseconds and the windows are exact.
type virtualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *virtualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *virtualClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

var benchSeq atomic.Int64

// BenchmarkTicketsUnderPlanLimit opens one ticket per iteration through the
// opener (ledger, outcome and all) against the Zendesk emulator at its
// default limit, the smallest plan's 200 requests a minute, on a virtual
// clock. It reports requests/ticket and tickets/min: tickets over the
// per-minute windows they used (run a multiple of the window, e.g.
// -benchtime 400x, for the steady rate). "first-delivery" is a message's
// first delivery (create at once); "redelivery" is a delivery count of 2,
// which looks up before creating — every ticket's path before issue 16.
func BenchmarkTicketsUnderPlanLimit(b *testing.B) {
	ctx := context.Background()
	br := testkit.NATS(b)
	_, js := br.Connect(b)
	pool, err := postgres.Open(ctx, testkit.Postgres(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := ledger.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	claims, err := ledger.OpenClaimPool(ctx, pool, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(claims.Close)
	rules, err := support.DefaultRules()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		attempt int
	}{{"first-delivery", 1}, {"redelivery", 2}} {
		b.Run(bc.name, func(b *testing.B) {
			clock := &virtualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			start := clock.Now()
			emu, err := zendeskemu.New(zendeskemu.Options{Email: "agent@example.com", APIToken: "zd", Now: clock.Now,
				Groups: []zendeskemu.Group{{ID: 11, Name: "Billing"}, {ID: 12, Name: "Customer Success"}}})
			if err != nil {
				b.Fatal(err)
			}
			api := httptest.NewServer(emu)
			defer api.Close()
			client, err := zendesk.New(zendesk.Config{BaseURL: api.URL, Email: "agent@example.com", APIToken: config.NewSecret("zd"),
				Now: clock.Now, Sleep: clock.Sleep})
			if err != nil {
				b.Fatal(err)
			}
			o := support.NewOpener(client, rules, map[string]int64{"Billing": 11, "Customer Success": 12},
				ledger.New(pool, ledger.WithClaimPool(claims)), js, support.ConsumerName, slog.New(slog.DiscardHandler))
			msgs := make([]*consumer.Message, b.N)
			for i := range msgs {
				id := fmt.Sprintf("billing.payment.failed:in_bench%d:1", benchSeq.Add(1))
				data, err := proto.Marshal(failedPayment(id))
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = &consumer.Message{Subject: subjects.BillingPaymentFailed, Data: data,
					Header: nats.Header{wire.HeaderMsgID: {id}}, ID: id, Attempt: bc.attempt}
			}
			b.ResetTimer()
			for _, m := range msgs {
				// A failed attempt (a 429 at a window's edge) is retried as
				// the consumer would: redelivered, so it looks up.
				for m.Attempt = bc.attempt; ; m.Attempt++ {
					if err := o.Handle(ctx, m); err == nil {
						break
					} else if m.Attempt > 10 {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			if n := len(emu.Tickets()); n != b.N {
				b.Fatalf("%d tickets, want %d", n, b.N)
			}
			windows := int(clock.Now().Sub(start)/time.Minute) + 1
			b.ReportMetric(float64(len(emu.Requests()))/float64(b.N), "requests/ticket")
			b.ReportMetric(float64(b.N)/float64(windows), "tickets/min")
		})
	}
}
