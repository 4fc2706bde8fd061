package natsbus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/wire"
)

// syncBenchEvents is how many events one iteration publishes.
const syncBenchEvents = 2000

// BenchmarkPublishSync measures what "acknowledged means durable" costs:
// Stripe events (the invoice.payment_failed fixture, ~5 KB) published to
// the STRIPE stream of an embedded server on this machine's disk, each
// waiting for its PubAck, with JetStream's default (write, fsync every two
// minutes: sync_interval 2m) against sync_interval: always (fsync before
// the PubAck, the production configuration). in_flight=1 is a publisher
// that waits for each ack before the next; in_flight=64 is the gateway
// under concurrent webhooks (asynchronous publishes, acks pipelined on one
// connection). Run it with
//
//	go test -run '^$' -bench BenchmarkPublishSync -benchtime 3x ./platform/devkit/integration/natsbus
func BenchmarkPublishSync(b *testing.B) {
	body := testkit.StripeEvent(b, "invoice.payment_failed")
	for _, always := range []bool{false, true} {
		for _, inFlight := range []int{1, 64} {
			b.Run(fmt.Sprintf("sync_always=%t/in_flight=%d", always, inFlight), func(b *testing.B) {
				js := syncBenchServer(b, always, inFlight)
				ctx := context.Background()
				n := 0
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					for range syncBenchEvents {
						n++
						id := fmt.Sprintf("evt_syncbench%08d", n)
						msg := &nats.Msg{Subject: "stripe.events.invoice.payment_failed", Data: body, Header: nats.Header{wire.HeaderMsgID: {id}}}
						if _, err := js.PublishMsgAsync(msg); err != nil {
							b.Fatal(err)
						}
					}
					select {
					case <-js.PublishAsyncComplete():
					case <-time.After(time.Minute):
						b.Fatal("acks still pending after a minute")
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				info, err := mustStream(b, ctx, js).Info(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if info.State.Msgs != uint64(n) {
					b.Fatalf("stream holds %d events, %d published", info.State.Msgs, n)
				}
				b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
				b.ReportMetric(float64(elapsed.Microseconds())/float64(n), "µs/event")
			})
		}
	}
}

func mustStream(b *testing.B, ctx context.Context, js jetstream.JetStream) jetstream.Stream {
	s, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// syncBenchServer starts an embedded JetStream server storing under the
// benchmark's temporary directory (on disk, so fsync costs what it costs),
// with or without sync_interval: always, migrates the catalogue onto it
// and returns a JetStream context allowing inFlight unacknowledged
// publishes.
func syncBenchServer(b *testing.B, syncAlways bool, inFlight int) jetstream.JetStream {
	b.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: b.TempDir(), SyncAlways: syncAlways,
	})
	if err != nil {
		b.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("embedded NATS not ready")
	}
	b.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(inFlight))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); err != nil {
		b.Fatal(err)
	}
	return js
}
