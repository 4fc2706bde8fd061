package identity_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/identity"
)

// BenchmarkHandle measures identity's handler end to end per Stripe event —
// resolve in PostgreSQL, derive, publish to JetStream and wait for the
// PubAck — with 8 events in flight (the default workers), over 1,000
// customers, alternating invoice.paid and customer.subscription.updated.
func BenchmarkHandle(b *testing.B) {
	broker := testkit.NATS(b)
	_, js := broker.Connect(b)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testkit.Postgres(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if err := identity.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	svc := identity.NewService(identity.NewStore(pool), js, nil, slog.New(slog.DiscardHandler))
	templates := [][]byte{testkit.StripeEvent(b, "invoice.paid"), testkit.StripeEvent(b, "customer.subscription.updated")}
	ids := [][]byte{[]byte("evt_1O5cugGgdF1VjufLgEvxRpek"), []byte("evt_1O5Nv5GgdF1VjufLza9UqNwQ")}
	objs := [][]byte{[]byte("in_1O00X6GgdF1VjufL97zeI8ME"), []byte("sub_1O00X8GgdF1VjufLsFtFRRh8")}
	var n atomic.Int64
	b.SetParallelism(4) // 2 cores × 4 = 8 in flight
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			k := i % 2
			evt := fmt.Sprintf("evt_bench%020d", i)
			raw := bytes.Replace(templates[k], ids[k], []byte(evt), 1)
			raw = bytes.ReplaceAll(raw, []byte("cus_OnMHOpJU2HN6Xv"), fmt.Appendf(nil, "cus_Bench%06d", i%1000))
			raw = bytes.ReplaceAll(raw, objs[k], fmt.Appendf(nil, "%s_%d", objs[k][:3], i))
			m := &consumer.Message{Subject: "stripe.events.x", Data: raw, Header: nats.Header{wire.HeaderMsgID: {evt}}, ID: evt}
			if err := svc.Handle(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
