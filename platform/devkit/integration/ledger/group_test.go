package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
)

// groupedLedger is a replica's ledger with claim groups, its pools' round
// trips counted in trips, and a pool of its own for the test.
func groupedLedger(t *testing.T, trips *testkit.RoundTrips, workers int) (*ledger.Ledger, *pgxpool.Pool) {
	t.Helper()
	url, admin := openLedgerDB(t)
	return tracedProcess(t, url, trips, workers, ledger.WithClaimGroups()), admin
}

// gatherThenRelease starts call(i) for i in [from, n), each in a goroutine
// counted in wg, and once every one of them has been called lets the held
// ledger go (release) and waits for wg: the calls gather behind the held
// one.
func gatherThenRelease(wg *sync.WaitGroup, from, n int, call func(int), release func()) {
	var called sync.WaitGroup
	for i := from; i < n; i++ {
		wg.Add(1)
		called.Add(1)
		go func() { called.Done(); call(i) }()
	}
	called.Wait()
	release()
	wg.Wait()
}

// holdLedger blocks every claim's lookup (a table lock on done_effects)
// until the returned func is called, so that claims made meanwhile gather
// into the next group.
func holdLedger(t *testing.T, admin *pgxpool.Pool) (waiting func() bool, release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE done_effects IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	t.Cleanup(release)
	waiting = func() bool {
		var n int
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'done_effects'::regclass`).Scan(&n)
		return err == nil && n > 0
	}
	return waiting, release
}

// Effects that start together share claims: 16 fresh effects, the first
// sent at once and the other 15 gathered while its claim is on its way,
// cost two groups' round trips (a claim and a record each), not 16
// effects' 32; each ran once and each result is recorded.
func TestClaimGroupsShareRoundTrips(t *testing.T) {
	ctx := context.Background()
	trips := &testkit.RoundTrips{}
	l, admin := groupedLedger(t, trips, 16)
	waiting, release := holdLedger(t, admin)
	before := trips.Count()

	const n = 16
	var ran atomic.Int32
	results, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	call := func(i int) {
		defer wg.Done()
		k := ledger.Key{Consumer: "crm", MessageID: fmt.Sprintf("evt_g%d", i), Effect: "hubspot.upsert"}
		got, err := l.OnceFresh(ctx, k, func(context.Context) ([]byte, error) {
			ran.Add(1)
			return fmt.Appendf(nil, "contact-%d", i), nil
		})
		results[i], errs[i] = string(got), err
	}
	wg.Add(1)
	go call(0)
	testkit.WaitFor(t, 10*time.Second, "the first claim waiting on the held table", waiting)
	gatherThenRelease(&wg, 1, n, call, release)
	claimTrips := trips.Count() - before
	if got := ran.Load(); got != n {
		t.Errorf("effects ran %d times, want %d", got, n)
	}
	for i := range n {
		want := fmt.Sprintf("contact-%d", i)
		if errs[i] != nil || results[i] != want {
			t.Errorf("effect %d: %q, %v; want %q", i, results[i], errs[i], want)
		}
		k := ledger.Key{Consumer: "crm", MessageID: fmt.Sprintf("evt_g%d", i), Effect: "hubspot.upsert"}
		if got, done, err := l.Lookup(ctx, k); err != nil || !done || string(got) != want {
			t.Errorf("effect %d recorded %q, %v, %v; want %q", i, got, done, err, want)
		}
	}
	// Two groups are 4 round trips; a straggler that missed the second
	// group makes a third. Claims of their own would be 32.
	if got := claimTrips; got > 6 {
		t.Errorf("%d round trips for %d effects, want at most 6 (groups of claims)", got, n)
	}
}

// One group, its members faring differently: one effect fails (nothing
// recorded, it may run again), one panics (the panic goes on to its
// caller, nothing recorded), one key comes twice (its effect runs once,
// both callers get its result), one was done already (not run again);
// the rest are recorded, and the group's locks are released.
func TestClaimGroupMembersFareApart(t *testing.T) {
	ctx := context.Background()
	trips := &testkit.RoundTrips{}
	l, admin := groupedLedger(t, trips, 8)
	key := func(id string) ledger.Key {
		return ledger.Key{Consumer: "support", MessageID: id, Effect: "zendesk.ticket"}
	}
	if err := l.Record(ctx, key("evt_done"), []byte("ticket-old")); err != nil {
		t.Fatal(err)
	}
	waiting, release := holdLedger(t, admin)
	boom := errors.New("zendesk 503")
	var dupRuns atomic.Int32
	type outcome struct {
		got      string
		err      error
		panicked any
	}
	cases := []struct {
		id     string
		effect func(context.Context) ([]byte, error)
	}{
		{"evt_ok", func(context.Context) ([]byte, error) { return []byte("ticket-1"), nil }},
		{"evt_fail", func(context.Context) ([]byte, error) { return nil, boom }},
		{"evt_panic", func(context.Context) ([]byte, error) { panic("handler bug") }},
		{"evt_dup", func(context.Context) ([]byte, error) { dupRuns.Add(1); return []byte("ticket-2"), nil }},
		{"evt_dup", func(context.Context) ([]byte, error) { dupRuns.Add(1); return []byte("ticket-2"), nil }},
		{"evt_done", func(context.Context) ([]byte, error) { t.Error("a done effect ran again"); return nil, nil }},
	}
	outcomes := make([]outcome, len(cases))
	var wg sync.WaitGroup
	run := func(i int) {
		defer wg.Done()
		defer func() { outcomes[i].panicked = recover() }()
		got, err := l.OnceFresh(ctx, key(cases[i].id), cases[i].effect)
		outcomes[i].got, outcomes[i].err = string(got), err
	}
	// A first claim blocks on the held table while the cases gather.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := l.OnceFresh(ctx, key("evt_first"), func(context.Context) ([]byte, error) { return []byte("x"), nil }); err != nil {
			t.Error(err)
		}
	}()
	testkit.WaitFor(t, 10*time.Second, "the first claim waiting on the held table", waiting)
	for i := range cases {
		wg.Add(1)
		go run(i)
	}
	release()
	wg.Wait()

	want := []outcome{{got: "ticket-1"}, {err: boom}, {panicked: "handler bug"}, {got: "ticket-2"}, {got: "ticket-2"}, {got: "ticket-old"}}
	for i, w := range want {
		o := outcomes[i]
		if o.got != w.got || !errors.Is(o.err, w.err) || o.panicked != w.panicked {
			t.Errorf("%s: %q, %v, panic %v; want %q, %v, panic %v", cases[i].id, o.got, o.err, o.panicked, w.got, w.err, w.panicked)
		}
	}
	if n := dupRuns.Load(); n != 1 {
		t.Errorf("the key that came twice ran %d times, want 1", n)
	}
	for id, want := range map[string]string{"evt_ok": "ticket-1", "evt_dup": "ticket-2", "evt_done": "ticket-old", "evt_first": "x"} {
		if got, done, err := l.Lookup(ctx, key(id)); err != nil || !done || string(got) != want {
			t.Errorf("%s recorded %q, %v, %v; want %q", id, got, done, err, want)
		}
	}
	for _, id := range []string{"evt_fail", "evt_panic"} {
		if _, done, err := l.Lookup(ctx, key(id)); err != nil || done {
			t.Errorf("%s: done %v, %v; want nothing recorded", id, done, err)
		}
	}
	// Every lock is released: a failed effect can be claimed again at once.
	var held int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held); err != nil || held != 0 {
		t.Errorf("%d advisory locks still held (%v), want 0", held, err)
	}
	got, err := l.OnceFresh(ctx, key("evt_fail"), func(context.Context) ([]byte, error) { return []byte("ticket-3"), nil })
	if err != nil || string(got) != "ticket-3" {
		t.Errorf("the failed effect's retry: %q, %v", got, err)
	}
}

// A group's key that another process is claiming leaves the group and
// waits for it alone: the effect runs once, in the other process, and
// the group's other members do not wait for it.
func TestClaimGroupLeavesAHeldKeyToWait(t *testing.T) {
	ctx := context.Background()
	url, _ := openLedgerDB(t)
	other := process(t, url, 1)
	grouped := process(t, url, 4, ledger.WithClaimGroups())
	held := ledger.Key{Consumer: "crm", MessageID: "evt_held", Effect: "hubspot.upsert"}
	started := make(chan struct{})
	finish, finishIt := gate(t)
	otherDone := make(chan error, 1)
	go func() {
		_, err := other.Once(ctx, held, func(context.Context) ([]byte, error) { close(started); <-finish; return []byte("contact-other"), nil })
		otherDone <- err
	}()
	<-started
	var wg sync.WaitGroup
	var heldGot string
	var heldErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, err := grouped.OnceFresh(ctx, held, func(context.Context) ([]byte, error) {
			t.Error("the held key's effect ran twice")
			return nil, nil
		})
		heldGot, heldErr = string(got), err
	}()
	// Another key of the same ledger goes through meanwhile.
	free := ledger.Key{Consumer: "crm", MessageID: "evt_free", Effect: "hubspot.upsert"}
	if got, err := grouped.OnceFresh(ctx, free, func(context.Context) ([]byte, error) { return []byte("contact-free"), nil }); err != nil || string(got) != "contact-free" {
		t.Fatalf("a free key while another waits: %q, %v", got, err)
	}
	finishIt()
	wg.Wait()
	if err := <-otherDone; err != nil {
		t.Fatal(err)
	}
	if heldErr != nil || heldGot != "contact-other" {
		t.Fatalf("held key: %q, %v; want the other process's result", heldGot, heldErr)
	}
}

// A group's statements probe done_effects' primary key for each key, on a
// ledger with history, in their generic plans too: a join that hashed the
// table would cost each group in proportion to every effect ever done.
func TestClaimGroupStatementsUseTheIndex(t *testing.T) {
	ctx := context.Background()
	url, plain := openLedgerDB(t)
	for _, q := range []string{
		`INSERT INTO done_effects (consumer, message_id, effect, result)
			SELECT c, 'evt_h' || g, 'hubspot.upsert', 'contact' FROM generate_series(1, 20000) g, (VALUES ('crm'), ('support')) v(c)`,
		`ANALYZE done_effects`,
	} {
		if _, err := plain.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	traced, stmts := testkit.TracedPool(t, url)
	l := ledger.New(traced, ledger.WithClaimGroups())
	for _, id := range []string{"evt_h7", "evt_new"} {
		k := ledger.Key{Consumer: "crm", MessageID: id, Effect: "hubspot.upsert"}
		if _, err := l.OnceFresh(ctx, k, func(context.Context) ([]byte, error) { return []byte("contact"), nil }); err != nil {
			t.Fatal(err)
		}
	}
	sent := stmts.Take()
	scans, err := testkit.SeqScans(ctx, plain, sent, "done_effects")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scans {
		t.Error(s)
	}
	if len(sent) < 6 {
		t.Errorf("%d statements explained, want the group's claim and record", len(sent))
	}
}

// A caller stopped while another member of its group still works does not
// wait for it: it gets a transient error at once (its message is
// retried), and its result is recorded with the group's all the same —
// also when the group's connection is lost before its COMMIT, when the
// group's last member records every result alone.
func TestClaimGroupMemberStopsBeforeItsGroupEnds(t *testing.T) {
	for _, lost := range []bool{false, true} {
		t.Run(map[bool]string{false: "the group commits", true: "the group's connection is lost"}[lost], func(t *testing.T) {
			memberStopsBeforeItsGroupEnds(t, lost)
		})
	}
}

func memberStopsBeforeItsGroupEnds(t *testing.T, lost bool) {
	ctx := context.Background()
	trips := &testkit.RoundTrips{}
	l, admin := groupedLedger(t, trips, 4)
	key := func(id string) ledger.Key {
		return ledger.Key{Consumer: "crm", MessageID: id, Effect: "hubspot.upsert"}
	}
	waiting, release := holdLedger(t, admin)
	first := make(chan error, 1)
	go func() {
		_, err := l.OnceFresh(ctx, key("evt_first"), func(context.Context) ([]byte, error) { return []byte("x"), nil })
		first <- err
	}()
	testkit.WaitFor(t, 10*time.Second, "the first claim waiting on the held table", waiting)

	slowStarted, fastDone := make(chan struct{}), make(chan error, 1)
	finish, finishIt := gate(t)
	slowDone := make(chan error, 1)
	var entered sync.WaitGroup // both call before the held claim is let go, so they share the next group
	entered.Add(2)
	go func() {
		entered.Done()
		_, err := l.OnceFresh(ctx, key("evt_slow"), func(context.Context) ([]byte, error) { close(slowStarted); <-finish; return []byte("slow"), nil })
		slowDone <- err
	}()
	stopCtx, stop := context.WithCancel(ctx)
	fastStarted := make(chan struct{})
	go func() {
		entered.Done()
		_, err := l.OnceFresh(stopCtx, key("evt_fast"), func(context.Context) ([]byte, error) {
			close(fastStarted)
			<-slowStarted // both are in one group
			return []byte("fast"), nil
		})
		fastDone <- err
	}()
	entered.Wait()
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-slowStarted
	<-fastStarted
	stop()
	select {
	case err := <-fastDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped caller: %v, want its context's end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stopped caller still waits for its group")
	}
	if lost {
		var killed int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM (SELECT DISTINCT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) holders`).Scan(&killed); err != nil || killed != 1 {
			t.Fatalf("terminate the group's backend: %d terminated, %v", killed, err)
		}
	}
	finishIt()
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"evt_fast": "fast", "evt_slow": "slow"} {
		if got, done, err := l.Lookup(ctx, key(id)); err != nil || !done || string(got) != want {
			t.Errorf("%s recorded %q, %v, %v; want %q", id, got, done, err, want)
		}
	}
}

// Attempt marks made together share one statement, committed before any
// of them returns; of marks of one key, exactly one is the first, in the
// group or across groups.
func TestAttemptMarksShareAStatement(t *testing.T) {
	ctx := context.Background()
	trips := &testkit.RoundTrips{}
	l, admin := groupedLedger(t, trips, 4)
	key := func(i int) ledger.Key {
		return ledger.Key{Consumer: "support", MessageID: fmt.Sprintf("evt_m%d", i%8), Effect: "zendesk.ticket:payment_failed"}
	}
	waiting, release := holdLedger(t, admin)
	const n = 16 // 8 keys, each marked twice
	firsts := make([]bool, n+1)
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	mark := func(i int) {
		defer wg.Done()
		firsts[i], errs[i] = l.MarkAttempt(ctx, key(i))
	}
	wg.Add(1)
	go mark(n) // key 0 again: held on the table while the others gather
	testkit.WaitFor(t, 10*time.Second, "the first mark waiting on the held table", waiting)
	before := trips.Count()
	gatherThenRelease(&wg, 0, n, mark, release)
	markTrips := trips.Count() - before
	byKey := map[ledger.Key]int{}
	for i, first := range firsts {
		if errs[i] != nil {
			t.Fatalf("mark %d: %v", i, errs[i])
		}
		if first {
			byKey[key(i)]++
		}
	}
	for i := range 8 {
		if byKey[key(i)] != 1 {
			t.Errorf("key %d: %d marks said first, want exactly 1", i, byKey[key(i)])
		}
		mk := key(i)
		mk.Effect = ledger.AttemptMark(mk.Effect)
		if _, found, err := l.Lookup(ctx, mk); err != nil || !found {
			t.Errorf("key %d: mark found %v, %v", i, found, err)
		}
	}
	// One statement for the 16 (a straggler makes a second); alone, 16.
	if markTrips > 2 {
		t.Errorf("%d round trips for %d marks, want at most 2", markTrips, n)
	}
}
