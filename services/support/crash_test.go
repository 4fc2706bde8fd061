package support_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/support"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

// dyingDesk opens the ticket, then the process "dies": it never returns,
// so neither the ledger row, the outcome nor the ack happen.
type dyingDesk struct {
	support.Desk
	once sync.Once
	died chan struct{}
}

func (d *dyingDesk) EnsureTicket(ctx context.Context, t zendesk.NewTicket, prior zendesk.Prior) (zendesk.Ticket, bool, error) {
	if _, _, err := d.Desk.EnsureTicket(ctx, t, prior); err != nil {
		return zendesk.Ticket{}, false, err
	}
	d.once.Do(func() { close(d.died) })
	select {} // killed between ticket creation and ack: nothing after this runs
}

// TestKilledBetweenTicketAndAckOpensOneTicket kills the support service
// after Zendesk stored the ticket and before anything else, restarts it, and
// finds exactly one ticket and one outcome.
func TestKilledBetweenTicketAndAckOpensOneTicket(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	ctx := context.Background()
	url := testkit.Postgres(t)
	pool, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	emu, err := zendeskemu.New(zendeskemu.Options{Email: "agent@example.com", APIToken: "zd", Groups: []zendeskemu.Group{{ID: 11, Name: "Billing"}, {ID: 12, Name: "Customer Success"}}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(emu)
	defer api.Close()
	client, err := zendesk.New(zendesk.Config{BaseURL: api.URL, Email: "agent@example.com", APIToken: config.NewSecret("zd")})
	if err != nil {
		t.Fatal(err)
	}
	rules, err := support.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]int64{"Billing": 11, "Customer Success": 12}
	start := func(desk support.Desk, pool *pgxpool.Pool) (*nats.Conn, context.CancelFunc) {
		nc, err := nats.Connect(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		cjs, _ := jetstream.New(nc)
		// Wired as run.go wires it: claims grouped on a pool of their own,
		// a pull's messages handled side by side.
		claims, err := ledger.OpenClaimPool(ctx, pool, 4)
		if err != nil {
			t.Fatal(err)
		}
		o := support.NewOpener(desk, rules, groups, ledger.New(pool, ledger.WithClaimPool(claims), ledger.WithClaimGroups()), cjs, support.ConsumerName, slog.New(slog.DiscardHandler))
		ccfg := consumer.Config{Name: support.ConsumerName, Stream: natsbus.StreamBilling,
			Subjects: []string{"billing.>"}, AckWait: 500 * time.Millisecond, Create: true}.SideBySide(4)
		c, err := consumer.NewBatch(cjs, ledger.New(pool), ccfg, consumer.Each(o.Handle, ccfg.Batch))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() { _ = c.Run(cctx) }()
		return nc, cancel
	}

	// The first process has a pool of its own, never closed: its handler
	// never returns, and closing a pool waits for every connection.
	pool1, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	dying := &dyingDesk{Desk: client, died: make(chan struct{})}
	nc1, cancel1 := start(dying, pool1)
	ev := &billingv1.DisputeOpened{Meta: &billingv1.EventMeta{EventId: "billing.dispute.opened:dp_k", CanonicalCustomerId: "cust_k",
		OccurredAt: timestamppb.Now(), Email: "k@example.com"}, Dispute: &billingv1.Dispute{DisputeId: "dp_k", Amount: 100, Currency: "usd"}}
	publish(t, js, ev)
	select {
	case <-dying.died:
	case <-time.After(10 * time.Second):
		t.Fatal("the ticket was never created")
	}
	// The process is gone: its NATS connection and its database
	// connections drop (which frees its ledger claim on the key).
	nc1.Close()
	cancel1()
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}

	nc2, cancel2 := start(client, pool) // the restarted process
	defer func() { cancel2(); nc2.Close() }()
	s, _ := js.Stream(ctx, natsbus.StreamSupport)
	testkit.WaitFor(t, 15*time.Second, "the outcome after the restart", func() bool {
		_, err := s.GetLastMsgForSubject(ctx, subjects.SupportTicketOpened)
		return err == nil
	})
	if n := len(emu.TicketsByExternalID(support.ExternalID("chargeback", "billing.dispute.opened:dp_k"))); n != 1 {
		t.Fatalf("%d tickets after a kill between creation and ack, want 1", n)
	}
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("%d outcomes, want 1", info.State.Msgs)
	}
}

func publish(t *testing.T, js jetstream.JetStream, m subjects.BillingEvent) {
	t.Helper()
	e := &env{js: js}
	e.publish(t, m)
}
