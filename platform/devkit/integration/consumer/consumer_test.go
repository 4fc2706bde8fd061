package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

type env struct {
	broker *testkit.Broker
	js     jetstream.JetStream
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
}

func setup(t *testing.T) *env {
	t.Helper()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	pool, err := postgres.Open(context.Background(), testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := ledger.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return &env{broker: b, js: js, pool: pool, ledger: ledger.New(pool)}
}

// instance is one running consumer with its own connection, as one process.
type instance struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

func (e *env) start(t *testing.T, cfg consumer.Config, h consumer.Handler) *instance {
	t.Helper()
	nc, err := nats.Connect(e.broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if cfg.Stream == "" {
		cfg.Stream = natsbus.StreamBilling
	}
	cfg.Create = true // the tests' consumers are not in the catalogue
	c, err := consumer.New(js, e.ledger, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- c.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop shuts the instance down gracefully.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("consumer did not stop")
	}
	in.nc.Close()
}

// kill is a crash as the broker sees it: the connection drops with work
// unacknowledged, and nothing runs afterwards.
func (in *instance) kill() {
	in.nc.Close()
	in.cancel()
	in.cancel = nil
}

func (e *env) publish(t *testing.T, subject, id, data string) {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: []byte(data), Header: nats.Header{"Nats-Msg-Id": {id}}}
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func (e *env) consumerInfo(t *testing.T, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(context.Background(), stream, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// settled reports whether the consumer exists and has settled every message
// stored for it (testkit.Settled).
func (e *env) settled(t *testing.T, stream, name string) func() bool {
	return func() bool {
		ok, err := testkit.Settled(context.Background(), e.js, stream, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
}

func (e *env) deadLetters(t *testing.T, subject string) []*consumer.DeadLetter {
	t.Helper()
	s, err := e.js.Stream(context.Background(), natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*consumer.DeadLetter
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		if raw.Subject != subject {
			continue
		}
		dl, err := consumer.DecodeDeadLetter(raw.Data)
		if err != nil {
			t.Fatalf("decode dead letter: %v", err)
		}
		out = append(out, dl)
	}
	return out
}

type attempts struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *attempts) inc(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	a.n[id]++
	return a.n[id]
}

func (a *attempts) get(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[id]
}

func TestTransientFailureIsRetriedThenAcked(t *testing.T) {
	e := setup(t)
	var seen attempts
	e.start(t, consumer.Config{Name: "retry", Subjects: []string{"billing.test.>"}, Backoff: []time.Duration{50 * time.Millisecond}},
		func(ctx context.Context, m *consumer.Message) error {
			if seen.inc(m.ID) == 1 && m.ID == "b" {
				return errclass.Transient(errors.New("vendor 503"))
			}
			return nil
		})
	for _, id := range []string{"a", "b", "c"} {
		e.publish(t, "billing.test.x", id, "{}")
	}
	testkit.WaitFor(t, 10*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "retry"))
	if got := seen.get("b"); got != 2 {
		t.Errorf("b handled %d times, want 2 (fail, then succeed)", got)
	}
	if got := seen.get("a"); got != 1 {
		t.Errorf("a handled %d times, want 1", got)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM message_failures`).Scan(&n); err != nil || n != 0 {
		t.Errorf("failure history rows = %d (%v), want 0 once handled", n, err)
	}
	if dls := e.deadLetters(t, "dlq.retry"); len(dls) != 0 {
		t.Errorf("%d dead letters, want 0", len(dls))
	}
}

func TestPoisonMessageIsDeadLetteredWhileOthersFlow(t *testing.T) {
	e := setup(t)
	var handled atomic.Int64
	e.start(t, consumer.Config{Name: "poison", Subjects: []string{"billing.test.>"}, Workers: 1},
		func(ctx context.Context, m *consumer.Message) error {
			if m.ID == "m05" {
				return errclass.Permanent(errors.New("customer email is not an address"))
			}
			handled.Add(1)
			return nil
		})
	for i := 0; i < 20; i++ {
		e.publish(t, "billing.test.poison", fmt.Sprintf("m%02d", i), fmt.Sprintf(`{"n":%d}`, i))
	}
	testkit.WaitFor(t, 10*time.Second, "all settled", e.settled(t, natsbus.StreamBilling, "poison"))
	if got := handled.Load(); got != 19 {
		t.Fatalf("%d messages handled, want the 19 behind and around the poison one", got)
	}
	dls := e.deadLetters(t, "dlq.poison")
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if dl.OriginalSubject != "billing.test.poison" || string(dl.OriginalData) != `{"n":5}` || dl.OriginalMsgID != "m05" ||
		dl.Consumer != "poison" || dl.Class != errclass.ClassPermanent || dl.Attempts != 1 ||
		!strings.Contains(dl.Reason, "not an address") || dl.OriginalHeaders.Get("Nats-Msg-Id") != "m05" {
		t.Errorf("dead letter %+v", dl)
	}
}

func TestExhaustedRetriesAreDeadLettered(t *testing.T) {
	e := setup(t)
	var seen attempts
	var mu sync.Mutex
	var fates []string // what OnFailure heard, per attempt
	onFailure := func(_ context.Context, m *consumer.Message, class errclass.Class, _ string, retryAt time.Time) {
		mu.Lock()
		defer mu.Unlock()
		fates = append(fates, fmt.Sprintf("%d:%s:%v", m.Attempt, class, !retryAt.IsZero()))
	}
	e.start(t, consumer.Config{Name: "exhaust", Subjects: []string{"billing.test.>"}, MaxAttempts: 3, Backoff: []time.Duration{20 * time.Millisecond}, OnFailure: onFailure},
		func(ctx context.Context, m *consumer.Message) error {
			seen.inc(m.ID)
			return errors.New("connection reset by vendor") // unknown: retried, then dead-lettered
		})
	e.publish(t, "billing.test.x", "x1", "{}")
	testkit.WaitFor(t, 10*time.Second, "dead letter", func() bool { return len(e.deadLetters(t, "dlq.exhaust")) == 1 })
	testkit.WaitFor(t, 10*time.Second, "settled", e.settled(t, natsbus.StreamBilling, "exhaust"))
	dl := e.deadLetters(t, "dlq.exhaust")[0]
	if dl.Class != errclass.ClassUnknown || dl.Attempts != 3 || seen.get("x1") != 3 {
		t.Errorf("class %v attempts %d handled %d; want unknown, 3, 3", dl.Class, dl.Attempts, seen.get("x1"))
	}
	if dl.FirstFailureAt.IsZero() || dl.LastFailureAt.Before(dl.FirstFailureAt) {
		t.Errorf("failure times %v .. %v", dl.FirstFailureAt, dl.LastFailureAt)
	}
	// OnFailure hears of the dead letter after the message is settled.
	testkit.WaitFor(t, 5*time.Second, "OnFailure to hear all three attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fates) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(fates, " "); got != "1:unknown:true 2:unknown:true 3:unknown:false" {
		t.Errorf("OnFailure heard %q, want two retries then the dead letter", got)
	}
}

func TestPanicIsDeadLetteredAndConsumerSurvives(t *testing.T) {
	e := setup(t)
	var ok atomic.Int64
	e.start(t, consumer.Config{Name: "panics", Subjects: []string{"billing.test.>"}},
		func(ctx context.Context, m *consumer.Message) error {
			if m.ID == "boom" {
				panic("handler bug")
			}
			ok.Add(1)
			return nil
		})
	e.publish(t, "billing.test.x", "boom", "{}")
	e.publish(t, "billing.test.x", "fine", "{}")
	testkit.WaitFor(t, 10*time.Second, "settled", e.settled(t, natsbus.StreamBilling, "panics"))
	dls := e.deadLetters(t, "dlq.panics")
	if len(dls) != 1 || dls[0].Class != errclass.ClassPermanent || !strings.Contains(dls[0].Reason, "panic") || ok.Load() != 1 {
		t.Fatalf("dead letters %+v, handled %d", dls, ok.Load())
	}
}

func TestShutdownLetsInFlightWorkFinish(t *testing.T) {
	e := setup(t)
	started, release := make(chan struct{}), make(chan struct{})
	var handled atomic.Int64
	in := e.start(t, consumer.Config{Name: "drain", Subjects: []string{"billing.test.>"}},
		func(ctx context.Context, m *consumer.Message) error {
			close(started)
			<-release // work in flight when shutdown begins
			handled.Add(1)
			return nil
		})
	e.publish(t, "billing.test.x", "slow", "{}")
	<-started
	stopped := make(chan struct{})
	go func() { in.stop(t); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a handler was still working")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	if handled.Load() != 1 {
		t.Fatal("in-flight handler did not finish")
	}
	if i := e.consumerInfo(t, natsbus.StreamBilling, "drain"); i.NumAckPending != 0 || i.NumPending != 0 {
		t.Fatalf("after graceful stop: pending %d, ack pending %d; want the message acked", i.NumPending, i.NumAckPending)
	}
}

func TestLongHandlerIsKeptAliveNotRedelivered(t *testing.T) {
	e := setup(t)
	var seen attempts
	e.start(t, consumer.Config{Name: "long", Subjects: []string{"billing.test.>"}, AckWait: 300 * time.Millisecond},
		func(ctx context.Context, m *consumer.Message) error {
			seen.inc(m.ID)
			select { // work that outlasts 3 × AckWait
			case <-time.After(time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		})
	e.publish(t, "billing.test.x", "long1", "{}")
	testkit.WaitFor(t, 10*time.Second, "settled", e.settled(t, natsbus.StreamBilling, "long"))
	if got := seen.get("long1"); got != 1 {
		t.Fatalf("handled %d times, want 1: InProgress should hold the message", got)
	}
}

// On the separate NATS 2.9 server (which ignores TermWithReason), a dead
// letter must still end the message's deliveries.
func TestDeadLetterEndsDeliveriesOnTheSeparateServer(t *testing.T) {
	url, _, js := testkit.ExternalNATS(t)
	ctx := context.Background()
	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Open(ctx, testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("ext%d", time.Now().UnixNano())
	subject := "billing.test." + run
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cjs, _ := jetstream.New(nc)
	var calls atomic.Int64
	c, err := consumer.New(cjs, ledger.New(pool), consumer.Config{Name: "test_" + run, Stream: natsbus.StreamBilling, Subjects: []string{subject}, AckWait: 300 * time.Millisecond, Create: true},
		func(ctx context.Context, m *consumer.Message) error {
			calls.Add(1)
			return errclass.Permanent(errors.New("poison"))
		})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	defer func() {
		cancel()
		<-done
		_ = js.DeleteConsumer(ctx, natsbus.StreamBilling, "test_"+run)
	}()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte("{}"), Header: nats.Header{"Nats-Msg-Id": {run}}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "dead letter handled once", func() bool { return calls.Load() == 1 })
	testkit.Never(t, 2*time.Second, "a redelivery after the dead letter (over 6 × AckWait)", func() bool { return calls.Load() > 1 })
}

// A consumer stopped before it has started — its service shut down while
// it was still creating its durable consumer — stops cleanly, without an
// error that would make a clean shutdown look like a failure.
func TestRunStoppedBeforeItStarts(t *testing.T) {
	e := setup(t)
	c, err := consumer.New(e.js, e.ledger, consumer.Config{Name: "never", Stream: natsbus.StreamBilling, Subjects: []string{"billing.test.>"}, Create: true},
		func(context.Context, *consumer.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Run(ctx); err != nil {
		t.Errorf("Run after its context was cancelled: %v, want nil", err)
	}
}

// A consumer without Create binds to the durable `switchyard migrate` made
// and never changes it: its own AckWait, MaxAckPending and filter are not
// applied (the durable's AckWait rules the keep-alive instead).
func TestRunBindsTheMigratedDurableWithoutChangingIt(t *testing.T) {
	e := setup(t)
	before := e.consumerInfo(t, natsbus.StreamBilling, natsbus.ConsumerCRM).Config
	handled := make(chan string, 1)
	c, err := consumer.New(e.js, e.ledger, consumer.Config{Name: natsbus.ConsumerCRM, Stream: natsbus.StreamBilling, Subjects: []string{"billing.>"},
		AckWait: time.Second, MaxAckPending: 7}, func(_ context.Context, m *consumer.Message) error { handled <- m.ID; return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	e.publish(t, "billing.invoice.paid", "bound-1", "{}")
	select {
	case id := <-handled:
		if id != "bound-1" {
			t.Fatalf("handled %s, want bound-1", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bound consumer handled nothing")
	}
	after := e.consumerInfo(t, natsbus.StreamBilling, natsbus.ConsumerCRM).Config
	if after.AckWait != before.AckWait || after.MaxAckPending != before.MaxAckPending || after.FilterSubject != before.FilterSubject {
		t.Errorf("durable after a bound Run: ack wait %v, max ack pending %d, filter %q; want the migrated %v, %d, %q",
			after.AckWait, after.MaxAckPending, after.FilterSubject, before.AckWait, before.MaxAckPending, before.FilterSubject)
	}
}

// A consumer whose durable is missing, or filters other subjects than the
// handler expects, refuses to run — it neither creates nor changes the
// durable — and says to run switchyard migrate.
func TestRunRefusesAMissingOrIncompatibleDurable(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name string
		cfg  consumer.Config
		want string
	}{
		{name: "missing", cfg: consumer.Config{Name: "fulfilment", Stream: natsbus.StreamBilling, Subjects: []string{"billing.>"}},
			want: "consumer fulfilment on BILLING does not exist: run `switchyard migrate`"},
		{name: "other filter", cfg: consumer.Config{Name: natsbus.ConsumerCRM, Stream: natsbus.StreamBilling, Subjects: []string{"billing.invoice.>"}},
			want: "consumer crm on BILLING filters billing.>, the service needs billing.invoice.>: run `switchyard migrate`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := consumer.New(e.js, e.ledger, tt.cfg, func(context.Context, *consumer.Message) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = c.Run(ctx)
			if !errors.Is(err, natsbus.ErrNotMigrated) || err.Error() != tt.want {
				t.Fatalf("Run = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := e.js.Consumer(context.Background(), natsbus.StreamBilling, "fulfilment"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the missing durable after Run: %v, want still not found", err)
	}
	if f := e.consumerInfo(t, natsbus.StreamBilling, natsbus.ConsumerCRM).Config.FilterSubject; f != "billing.>" {
		t.Errorf("crm's filter after Run = %q, want billing.> unchanged", f)
	}
}

// More messages than workers, each handled for longer than AckWait (a
// handler parked behind a vendor's rate limiter): none is redelivered,
// neither one a worker holds nor one waiting for a worker.
func TestSlowHandlersAndAQueueAreNotRedelivered(t *testing.T) {
	e := setup(t)
	var seen attempts
	e.start(t, consumer.Config{Name: "parked", Subjects: []string{"billing.test.>"}, AckWait: time.Second, Workers: 2},
		func(ctx context.Context, m *consumer.Message) error {
			seen.inc(m.ID)
			select { // 3 × AckWait
			case <-time.After(3 * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		})
	const n = 4
	for i := range n {
		e.publish(t, "billing.test.x", fmt.Sprintf("parked%d", i), "{}")
	}
	testkit.WaitFor(t, 30*time.Second, "settled", e.settled(t, natsbus.StreamBilling, "parked"))
	info := e.consumerInfo(t, natsbus.StreamBilling, "parked")
	if info.Delivered.Consumer != n || info.NumRedelivered != 0 {
		t.Errorf("the server delivered %d times (%d redelivered), want %d deliveries", info.Delivered.Consumer, info.NumRedelivered, n)
	}
	for i := range n {
		if got := seen.get(fmt.Sprintf("parked%d", i)); got != 1 {
			t.Errorf("parked%d handled %d times, want 1", i, got)
		}
	}
}
