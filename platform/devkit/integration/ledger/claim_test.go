package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/postgres"
)

// openLedgerDB returns a migrated database's URL and a pool on it.
func openLedgerDB(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	url := testkit.Postgres(t)
	pool, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := ledger.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return url, pool
}

// process is one replica's ledger: its own pool and claim pool.
func process(t *testing.T, url string, workers int, opts ...ledger.Option) *ledger.Ledger {
	t.Helper()
	return tracedProcess(t, url, nil, workers, opts...)
}

// tracedProcess is process with its pools' statements traced (tracer may
// be nil).
func tracedProcess(t *testing.T, url string, tracer pgx.QueryTracer, workers int, opts ...ledger.Option) *ledger.Ledger {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url, tracer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	claims, err := ledger.OpenClaimPool(ctx, pool, workers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(claims.Close)
	return ledger.New(pool, append([]ledger.Option{ledger.WithClaimPool(claims)}, opts...)...)
}

// forEachClaimMode runs test with claims of their own and, as a subtest,
// with claim groups (ledger.WithClaimGroups): what a caller sees must not
// depend on it.
func forEachClaimMode(t *testing.T, test func(t *testing.T, mode []ledger.Option)) {
	t.Run("alone", func(t *testing.T) { test(t, nil) })
	t.Run("grouped", func(t *testing.T) { test(t, []ledger.Option{ledger.WithClaimGroups()}) })
}

// gate is a channel closed by its close func or, at the latest, when the
// test ends (before the pools close), so a failing test never leaves an
// effect blocked on it.
func gate(t *testing.T) (<-chan struct{}, func()) {
	t.Helper()
	ch := make(chan struct{})
	var once sync.Once
	closeIt := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(closeIt)
	return ch, closeIt
}

// lockWaiters reports whether n sessions of the test's database wait for
// an advisory lock (a ledger claim another run holds).
func lockWaiters(pool *pgxpool.Pool, n int) func() bool {
	return func() bool {
		var waiting int
		err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
		return err == nil && waiting == n
	}
}

// Deliveries of one message racing each other, in two replicas: the effect
// runs once, and every caller gets its result.
func TestOnceRunsTheEffectOnceUnderConcurrency(t *testing.T) {
	forEachClaimMode(t, func(t *testing.T, mode []ledger.Option) {
		url, admin := openLedgerDB(t)
		replicas := []*ledger.Ledger{process(t, url, 4, mode...), process(t, url, 4, mode...)}
		k := ledger.Key{Consumer: "support", MessageID: "evt_race", Effect: "zendesk.ticket:payment_failed"}

		const callers = 8
		answer, answerIt := gate(t) // the vendor answers once every other delivery waits for the claim
		var ran atomic.Int32
		results := make([]string, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := replicas[i%2].Once(context.Background(), k, func(context.Context) ([]byte, error) {
					ran.Add(1)
					<-answer
					return fmt.Appendf(nil, "ticket-%d", i), nil
				})
				results[i], errs[i] = string(got), err
			}()
		}
		testkit.WaitFor(t, 10*time.Second, "every other delivery waiting for the claim", lockWaiters(admin, callers-1))
		answerIt()
		wg.Wait()
		if n := ran.Load(); n != 1 {
			t.Fatalf("the effect ran %d times, want 1", n)
		}
		for i := range callers {
			if errs[i] != nil || results[i] != results[0] || results[0] == "" {
				t.Errorf("caller %d: %q, %v; want %q like every other caller", i, results[i], errs[i], results[0])
			}
		}
	})
}

// A failed effect releases the claim: the waiting delivery runs it.
func TestOnceAfterAFailedEffectTheWaiterRunsIt(t *testing.T) {
	forEachClaimMode(t, func(t *testing.T, mode []ledger.Option) {
		url, admin := openLedgerDB(t)
		a, b := process(t, url, 1, mode...), process(t, url, 1, mode...)
		k := ledger.Key{Consumer: "crm", MessageID: "evt_fail", Effect: "hubspot.upsert"}
		started := make(chan struct{})
		fail, failIt := gate(t)
		boom := errors.New("hubspot 503")
		aDone := make(chan error, 1)
		go func() {
			_, err := a.Once(context.Background(), k, func(context.Context) ([]byte, error) {
				close(started)
				<-fail
				return nil, boom
			})
			aDone <- err
		}()
		<-started
		var got []byte
		bDone := make(chan error, 1)
		go func() {
			var err error
			got, err = b.Once(context.Background(), k, func(context.Context) ([]byte, error) { return []byte("contact-7"), nil })
			bDone <- err
		}()
		// The holder fails only once the waiter waits for its claim.
		testkit.WaitFor(t, 10*time.Second, "the second delivery waiting for the claim", lockWaiters(admin, 1))
		failIt()
		err := <-bDone
		if err != nil || string(got) != "contact-7" {
			t.Fatalf("waiter: %q, %v; want it to run the effect after the holder failed", got, err)
		}
		if err := <-aDone; !errors.Is(err, boom) {
			t.Fatalf("holder: %v, want its own failure", err)
		}
	})
}

// The holder dies mid-effect (its connection drops, as under kill -9): the
// server releases the claim and the next delivery runs the effect, with no
// lease to wait out.
func TestOnceHolderDeathFreesTheClaim(t *testing.T) {
	forEachClaimMode(t, func(t *testing.T, mode []ledger.Option) {
		url, pool := openLedgerDB(t)
		a, b := process(t, url, 1, mode...), process(t, url, 1, mode...)
		k := ledger.Key{Consumer: "support", MessageID: "evt_crash", Effect: "zendesk.ticket:refund"}
		started := make(chan struct{})
		dead, die := gate(t)
		go func() {
			_, _ = a.Once(context.Background(), k, func(context.Context) ([]byte, error) {
				close(started)
				<-dead
				return nil, errors.New("this process is dead") // nothing after a crash runs
			})
		}()
		<-started
		var bRan atomic.Bool
		bDone := make(chan error, 1)
		go func() {
			got, err := b.Once(context.Background(), k, func(context.Context) ([]byte, error) { bRan.Store(true); return []byte("ticket-2"), nil })
			if err == nil && string(got) != "ticket-2" {
				err = fmt.Errorf("result %q", got)
			}
			bDone <- err
		}()
		testkit.Never(t, 300*time.Millisecond, "the second delivery running while the first held the claim", bRan.Load)

		// The holder's connection drops: terminate the backend holding the claim.
		var killed int
		if err := pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || killed != 1 {
			t.Fatalf("terminate the claim's backend: %d terminated, %v", killed, err)
		}
		select {
		case err := <-bDone:
			if err != nil {
				t.Fatalf("second delivery: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the second delivery still waits after the holder died")
		}
		die()
		if got, done, err := b.Lookup(context.Background(), k); err != nil || !done || string(got) != "ticket-2" {
			t.Fatalf("recorded %q, %v, %v; want ticket-2", got, done, err)
		}
	})
}

// A claim held longer than the claim wait: the waiter gives up with a
// transient error (the message is retried) instead of waiting for ever.
func TestOnceWaiterGivesUpAfterTheClaimWait(t *testing.T) {
	forEachClaimMode(t, func(t *testing.T, mode []ledger.Option) {
		url, _ := openLedgerDB(t)
		a, b := process(t, url, 1, mode...), process(t, url, 1, append(mode, ledger.WithClaimWait(200*time.Millisecond))...)
		k := ledger.Key{Consumer: "alerts", MessageID: "dlq:1", Effect: "slack.alert"}
		started := make(chan struct{})
		release, releaseIt := gate(t)
		aDone := make(chan error, 1)
		go func() {
			_, err := a.Once(context.Background(), k, func(context.Context) ([]byte, error) { close(started); <-release; return nil, nil })
			aDone <- err
		}()
		<-started
		_, err := b.Once(context.Background(), k, func(context.Context) ([]byte, error) {
			t.Error("the waiter ran the effect while it was claimed")
			return nil, nil
		})
		if !errors.Is(err, ledger.ErrClaimWait) || errclass.Of(err) != errclass.ClassTransient {
			t.Fatalf("waiter: %v (%v), want a transient ErrClaimWait", err, errclass.Of(err))
		}
		releaseIt()
		if err := <-aDone; err != nil {
			t.Fatal(err)
		}
	})
}

// A caller that holds its own advisory lock on the key's name (the daily
// digest's one-replica-at-a-time lock) can still call Once: the claim is a
// different lock.
func TestOnceInsideTheCallersOwnAdvisoryLock(t *testing.T) {
	forEachClaimMode(t, func(t *testing.T, mode []ledger.Option) {
		_, pool := openLedgerDB(t)
		l := ledger.New(pool, mode...)
		k := ledger.Key{Consumer: "alerts", MessageID: "digest:2026-12-06", Effect: "slack.digest"}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var mine bool
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`, k.String()).Scan(&mine); err != nil || !mine {
				return fmt.Errorf("outer lock: %v, %v", mine, err)
			}
			_, err := l.Once(ctx, k, func(context.Context) ([]byte, error) { return []byte("posted"), nil })
			return err
		})
		if err != nil {
			t.Fatalf("Once inside the caller's lock: %v", err)
		}
	})
}

// A caller cancelled during its effect (shutdown) records nothing and
// leaves its claim connection clean: the claim is released, and the next
// Once on the same one-connection claim pool, and another replica's, work.
func TestOnceCancelledDuringTheEffectReleasesTheClaim(t *testing.T) {
	forEachClaimMode(t, func(t *testing.T, mode []ledger.Option) {
		url, _ := openLedgerDB(t)
		a, b := process(t, url, 1, mode...), process(t, url, 1, append(mode, ledger.WithClaimWait(5*time.Second))...)
		k := ledger.Key{Consumer: "crm", MessageID: "evt_cancel", Effect: "hubspot.upsert"}
		ctx, cancel := context.WithCancel(context.Background())
		_, err := a.Once(ctx, k, func(ctx context.Context) ([]byte, error) {
			cancel()
			<-ctx.Done()
			return nil, ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Once: %v, want context.Canceled", err)
		}
		if _, done, err := a.Lookup(context.Background(), k); err != nil || done {
			t.Fatalf("after cancel: done %v, %v; want nothing recorded", done, err)
		}
		got, err := b.Once(context.Background(), k, func(context.Context) ([]byte, error) { return []byte("contact-9"), nil })
		if err != nil || string(got) != "contact-9" {
			t.Fatalf("other replica: %q, %v; want it to run the effect", got, err)
		}
		k.Effect = "hubspot.note"
		got, err = a.Once(context.Background(), k, func(context.Context) ([]byte, error) { return []byte("note-1"), nil })
		if err != nil || string(got) != "note-1" {
			t.Fatalf("same replica, next effect: %q, %v", got, err)
		}
	})
}
