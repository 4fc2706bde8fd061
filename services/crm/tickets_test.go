package crm

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// TestEveryTicketComesBack: whatever becomes of a pull's messages —
// synced, no email to sync, an email HubSpot cannot take, already synced
// by an earlier delivery, HubSpot down — HandleBatch leaves no ticket out,
// so the next update goes out at once instead of waiting the (here
// hour-long) linger for a handler that will never send one.
func TestEveryTicketComesBack(t *testing.T) {
	ctx := context.Background()
	js, l := syncerDeps(t, 8)
	hub := httptest.NewServer(hubspotemu.New(hubspotemu.Options{Tokens: map[string][]string{"pat-t": nil}, TenSecondLimit: -1}))
	t.Cleanup(hub.Close)
	client, err := hubspot.New(hubspot.Config{BaseURL: hub.URL, Token: config.NewSecret("pat-t")})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.EnsureProperties(ctx, hubspot.DefaultProperties()); err != nil {
		t.Fatal(err)
	}
	s := NewSyncer(client, time.Hour, l, js, ConsumerName, slog.New(slog.DiscardHandler))
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- s.Run(rctx) }()
	t.Cleanup(func() { stop(); <-ran })

	msgs := customerEvents(t, 6)
	for i, email := range []string{"", "not an email"} {
		ev := &billingv1.CustomerUpserted{Meta: &billingv1.EventMeta{EventId: "billing.customer.upserted:odd" + string(rune('a'+i)), CanonicalCustomerId: "cust_odd",
			Email: email}, Email: email}
		data, _ := proto.Marshal(ev)
		subject, _ := subjects.Of(ev)
		msgs = append(msgs, &consumer.Message{Subject: subject, Data: data, ID: ev.GetMeta().GetEventId(), Attempt: 1})
	}
	handle := func(what string, ms []*consumer.Message) {
		t.Helper()
		hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		start := time.Now()
		_ = s.HandleBatch(hctx, ms)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: the pull took %v: a handler's ticket held a call", what, took)
		}
		if n := s.batch.pending.Load(); n != 0 {
			t.Fatalf("%s: %d tickets still out", what, n)
		}
	}
	handle("first delivery", msgs)
	for _, m := range msgs {
		m.Attempt = 2
	}
	handle("redelivery, already synced", msgs)
	hub.Close() // HubSpot down: every upsert fails
	for _, m := range customerEvents(t, 3) {
		handle("HubSpot down", []*consumer.Message{m})
	}
}

// syncerDeps is what a Syncer needs besides HubSpot, as run.go makes it: a
// broker, and a migrated ledger whose claims are grouped on a pool of
// their own of claims connections.
func syncerDeps(tb testing.TB, claims int) (jetstream.JetStream, *ledger.Ledger) {
	tb.Helper()
	ctx := context.Background()
	_, js := testkit.NATS(tb).Connect(tb)
	pool, err := postgres.Open(ctx, testkit.Postgres(tb), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	if err := ledger.Migrate(ctx, pool); err != nil {
		tb.Fatal(err)
	}
	claimPool, err := ledger.OpenClaimPool(ctx, pool, claims)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(claimPool.Close)
	return js, ledger.New(pool, ledger.WithClaimPool(claimPool), ledger.WithClaimGroups())
}
