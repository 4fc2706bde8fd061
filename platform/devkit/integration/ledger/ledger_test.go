package ledger_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/postgres"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

func TestLedger(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.Open(ctx, testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	l := ledger.New(pool)
	k := ledger.Key{Consumer: "crm", MessageID: "evt_1", Effect: "hubspot.upsert"}

	calls := 0
	effect := func(context.Context) ([]byte, error) { calls++; return []byte("contact-42"), nil }
	for i := 0; i < 3; i++ {
		got, err := l.Once(ctx, k, effect)
		if err != nil || string(got) != "contact-42" {
			t.Fatalf("Once #%d = %q, %v", i, got, err)
		}
	}
	if calls != 1 {
		t.Fatalf("effect ran %d times, want 1", calls)
	}
	boom := errors.New("vendor down")
	if _, err := l.Once(ctx, ledger.Key{Consumer: "crm", MessageID: "evt_2", Effect: "x"}, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed effect: %v", err)
	}
	if _, done, _ := l.Lookup(ctx, ledger.Key{Consumer: "crm", MessageID: "evt_2", Effect: "x"}); done {
		t.Fatal("a failed effect was recorded as done")
	}

	// RecordTx: the effect and its row commit together; the second is refused.
	for i, want := range []bool{true, false} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			fresh, err := l.RecordTx(ctx, tx, ledger.Key{Consumer: "projector", MessageID: "evt_3", Effect: "view"}, nil)
			if err != nil {
				return err
			}
			if fresh != want {
				t.Errorf("RecordTx #%d fresh = %v, want %v", i, fresh, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 3; i++ {
		f, err := l.RecordFailure(ctx, "crm", "evt_4", "transient", "503", t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if f.Attempts != i || !f.FirstFailureAt.Equal(t0.Add(time.Minute)) || !f.LastFailureAt.Equal(t0.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("failure #%d = %+v", i, f)
		}
	}
	if err := l.ClearFailures(ctx, "crm", "evt_4"); err != nil {
		t.Fatal(err)
	}
	if f, _ := l.RecordFailure(ctx, "crm", "evt_4", "auth", "401", t0); f.Attempts != 1 {
		t.Fatalf("after clear: %+v, want a fresh history", f)
	}
}

// An effect that happened is recorded even when the caller is shut down
// right after it (the daily digest's Slack post, then SIGTERM): otherwise
// the next run does it again.
func TestOnceRecordsAnEffectDoneAsTheCallerStops(t *testing.T) {
	ctx := context.Background()
	_, pool := openLedgerDB(t)
	l := ledger.New(pool)
	k := ledger.Key{Consumer: "alerts", MessageID: "digest:2026-12-06", Effect: "slack.digest"}
	runCtx, stop := context.WithCancel(ctx)
	if _, err := l.Once(runCtx, k, func(context.Context) ([]byte, error) {
		stop() // shut down while the post is answered
		return []byte("posted"), nil
	}); err != nil {
		t.Fatalf("Once: %v", err)
	}
	if got, done, err := l.Lookup(ctx, k); err != nil || !done || string(got) != "posted" {
		t.Fatalf("after a shutdown right after the effect: done %v, result %q, %v; want it recorded", done, got, err)
	}
}

// TestDoneLeavesOutAttemptMarks: a mark that an effect may have started is
// found by Lookup (so a later run looks before it acts) but is not a done
// effect: a replay's dry run, which lists Done, must not say it will skip a
// ticket that was only attempted.
func TestDoneLeavesOutAttemptMarks(t *testing.T) {
	ctx := context.Background()
	_, pool := openLedgerDB(t)
	l := ledger.New(pool)
	ticket := ledger.Key{Consumer: "support", MessageID: "evt_m", Effect: "zendesk.ticket:failed-payment"}
	for i, want := range []bool{true, false} {
		if first, err := l.MarkAttempt(ctx, ticket); err != nil || first != want {
			t.Fatalf("MarkAttempt #%d = %v, %v; want %v", i+1, first, err, want)
		}
	}
	mark := ticket
	mark.Effect = ledger.AttemptMark(ticket.Effect)
	if err := l.Record(ctx, ledger.Key{Consumer: "support", MessageID: "evt_m", Effect: "zendesk.ticket:refund"}, []byte("7")); err != nil {
		t.Fatal(err)
	}
	if _, found, err := l.Lookup(ctx, mark); err != nil || !found {
		t.Fatalf("Lookup of the mark = %v, %v; want found", found, err)
	}
	done, err := l.Done(ctx, "support", "evt_m")
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Effect != "zendesk.ticket:refund" {
		t.Errorf("Done = %+v, want only the refund ticket (no attempt mark)", done)
	}
}
