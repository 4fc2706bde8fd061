package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/postgres"
)

// WithClaimGroups makes concurrent claims of this Ledger share a
// transaction: what OnceFresh (and Once, past its lookup) would claim one
// key at a time on a connection each, a group claims together — BEGIN,
// the settings, one try-lock statement and one lookup statement for all of
// its keys in one round trip, and once every effect of the group has
// ended, one INSERT of the results with COMMIT in another. A consumer
// whose workers run effects side by side (crm's contacts, support's
// tickets) then spends PostgreSQL two round trips, one commit and six
// statements per group instead of per effect.
//
// Groups form by themselves, with no waiting: a claim is sent at once
// when no other claim of this Ledger is on its way to the server, and the
// claims that come while one is form the next group. Under load a group
// holds what the workers started during one round trip; alone, a claim
// costs what it did.
//
// What each caller sees is unchanged: the effect runs at most once among
// concurrent calls for its key, in any process, and Once returns only once
// its result is committed. A key whose lock the group cannot take at once
// (another run holds it, or the same key is in the group twice) leaves
// the group and is claimed alone, waiting for the lock as before. The
// cost is coupling: a caller's result is committed with its group's, so it
// returns when the group's slowest effect has ended (a consumer keeps its
// message alive meanwhile; a caller whose context ends first gets a
// transient error, and its result is still recorded), a failed claim
// round trip fails the whole group (each message is retried), and the
// locks are released together when the group ends. An effect that fails,
// is cancelled or panics records nothing and ends its part of the group;
// a retry of it that comes before the group ends waits for the group's
// lock, as it would for another run's.
func WithClaimGroups() Option {
	return func(l *Ledger) {
		l.groups = newGatherer(maxGroup, func() *claimGroup { return &claimGroup{committed: make(chan struct{})} })
		l.marks = newGatherer(maxGroup, func() *markGroup { return &markGroup{} })
	}
}

// maxGroup bounds a group's keys.
const maxGroup = 256

// claimGroup is one shared claim transaction and its members. Its
// gathering's answered channel is closed once the claim is answered; err
// is the claim's failure.
type claimGroup struct {
	gathering[*claimMember]
	err error

	conn *pgxpool.Conn // the claim's connection, until the group ends

	mu        sync.Mutex
	running   int            // members whose effects have not ended
	done      []*claimMember // members whose effects succeeded, to record
	committed chan struct{}  // closed once the group has ended; commitErr its failure
	commitErr error
}

func (g *claimGroup) base() *gathering[*claimMember] { return &g.gathering }

// claimMember is one caller's part of a group.
type claimMember struct {
	k        Key
	alone    bool   // not claimed by the group: claim it alone
	recorded []byte // done already: the recorded result (with isDone)
	isDone   bool
	result   []byte // the effect's result, once it succeeded
	// kept and keptErr: what the group's last member recorded alone for
	// it when the group's record failed (see end).
	kept    []byte
	keptErr error
}

// onceGrouped is OnceFresh through a claim group.
func (l *Ledger) onceGrouped(ctx context.Context, k Key, effect func(context.Context) ([]byte, error)) ([]byte, error) {
	m := &claimMember{k: k}
	g, _ := l.groups.join(m)
	// Not before the claim is answered, even if ctx ends: the group claims
	// m's key whether m waits or not, so m must see the answer to end its
	// part. The wait is bounded by the claims on their way before g's and
	// g's own (each claimWait for a connection and claimTimeout for the
	// round trip).
	l.groups.await(g, func(g *claimGroup) { l.sendClaim(ctx, g) })
	switch {
	case g.err != nil:
		return nil, g.err
	case m.alone:
		return l.onceAlone(ctx, k, effect)
	case m.isDone:
		return m.recorded, nil
	case ctx.Err() != nil: // stopped while the claim was on its way
		g.end(l, m, ctx.Err())
		return nil, ctx.Err()
	}
	ended := false
	defer func() {
		if !ended { // the effect panicked: end its part, and let the panic go on
			g.end(l, m, errors.New("effect panicked"))
		}
	}()
	result, err := effect(ctx)
	ended = true
	m.result = result
	g.end(l, m, err)
	if err != nil {
		return nil, err
	}
	select {
	case <-g.committed:
	case <-ctx.Done():
		// Stopping while another member's effect runs: the group still
		// records this result, and a redelivery waits for the group's
		// lock and finds it.
		return nil, errclass.Transient(fmt.Errorf("ledger record %s: %w (its group is still running)", k, ctx.Err()))
	}
	if g.commitErr == nil {
		return result, nil
	}
	return m.kept, m.keptErr // recorded alone after the group's record failed (see end)
}

// sendClaim sends g's claim and answers g.
func (l *Ledger) sendClaim(ctx context.Context, g *claimGroup) {
	answer(g.answered, &g.err, "ledger claim", func() error { return l.claimGroup(ctx, g) })
}

// answer sets *err to send's error and closes answered; if send panics,
// *err says so before answered is closed (the panic goes on), so no
// member waits for ever or reads an answer that was never given.
func answer(answered chan struct{}, err *error, what string, send func() error) {
	defer func() {
		if r := recover(); r != nil {
			*err = errclass.Transient(fmt.Errorf("%s panicked: %v", what, r))
			close(answered)
			panic(r)
		}
	}()
	*err = send()
	close(answered)
}

// markGroup is attempt marks recorded by one statement: first[i] says
// whether member i's mark is new.
type markGroup struct {
	gathering[Key]
	first []bool
	err   error
}

func (g *markGroup) base() *gathering[Key] { return &g.gathering }

// markGrouped is MarkAttempt through a group of marks (k names the mark).
// The marks are one INSERT, committed on its own before any member's
// request can leave, as a mark alone is.
func (l *Ledger) markGrouped(ctx context.Context, k Key) (bool, error) {
	g, i := l.marks.join(k)
	l.marks.await(g, func(g *markGroup) {
		answer(g.answered, &g.err, "ledger mark", func() error { return l.insertMarks(ctx, g) })
	})
	if g.err != nil {
		return false, g.err
	}
	return g.first[i], nil
}

// insertMarks records g's marks, and which of them are new: of a key that
// is in the group twice, only the first member's can be.
func (l *Ledger) insertMarks(ctx context.Context, g *markGroup) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	n := len(g.members)
	consumers, ids, effects := make([]string, n), make([]string, n), make([]string, n)
	at := make(map[Key]int, n)
	for i, k := range g.members {
		consumers[i], ids[i], effects[i] = k.Consumer, k.MessageID, k.Effect
		if _, dup := at[k]; !dup {
			at[k] = i
		}
	}
	rows, err := l.pool.Query(cctx, insertMarksSQL, consumers, ids, effects)
	if err != nil {
		return fmt.Errorf("ledger mark of %d effects: %w", n, err)
	}
	g.first = make([]bool, n)
	var k Key
	if _, err := pgx.ForEachRow(rows, []any{&k.Consumer, &k.MessageID, &k.Effect}, func() error {
		if i, ok := at[k]; ok {
			g.first[i] = true
		}
		return nil
	}); err != nil {
		return fmt.Errorf("ledger mark of %d effects: %w", n, err)
	}
	return nil
}

// claimTimeout bounds a group's claim round trip. Its try-locks never
// wait; its lookup could only wait for a table lock (DDL), which
// lock_timeout bounds first.
const claimTimeout = 30 * time.Second

// claimGroup sends g's claim: BEGIN, the settings, a try-lock of each key
// and the lookup of each, in one round trip. Members it cannot lock, or
// whose key came earlier in the group, are left to claim alone; members
// done already get their recorded result. The transaction stays open for
// the members' effects unless none is left to run.
func (l *Ledger) claimGroup(ctx context.Context, g *claimGroup) error {
	// A connection may take as long as a claim may wait for a lock (every
	// claim connection busy with slow effects); the round trip itself is
	// bounded apart.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), l.claimWait)
	conn, err := l.claims.Acquire(actx)
	acancel()
	if err != nil {
		return errclass.Transient(fmt.Errorf("ledger claim of %d effects: %w", len(g.members), err))
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	defer func() {
		if g.conn == nil { // not handed to the group (no effect to run, an error, a panic): its locks go
			postgres.RollbackOpen(cctx, conn.Conn())
			conn.Release()
		}
	}()
	consumers, ids, effects, lockNames := make([]string, 0, len(g.members)), make([]string, 0, len(g.members)), make([]string, 0, len(g.members)), make([]string, 0, len(g.members))
	first := map[Key]bool{}
	var claiming []*claimMember
	for _, m := range g.members {
		if first[m.k] {
			m.alone = true // claimed alone, it waits for this group's lock
			continue
		}
		first[m.k] = true
		claiming = append(claiming, m)
		consumers, ids, effects = append(consumers, m.k.Consumer), append(ids, m.k.MessageID), append(effects, m.k.Effect)
		lockNames = append(lockNames, claimKey(m.k))
	}
	batch := &pgx.Batch{}
	batch.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	batch.Queue(claimSettingsSQL, l.lockTimeoutSetting)
	batch.Queue(tryLockAllSQL, lockNames)
	batch.Queue(lookupAllSQL, consumers, ids, effects)
	c := conn.Conn()
	err = readGroupClaim(c.SendBatch(cctx, batch), claiming)
	if err == nil {
		for _, m := range claiming {
			if !m.alone && !m.isDone {
				g.running++
			}
		}
	}
	if err != nil || g.running == 0 {
		close(g.committed) // nothing to record: the deferred rollback releases the locks
		if err != nil {
			return errclass.Transient(fmt.Errorf("ledger claim of %d effects: %w", len(g.members), err))
		}
		return nil
	}
	g.conn = conn
	return nil
}

// readGroupClaim reads claimGroup's answers into its members and closes
// br.
func readGroupClaim(br pgx.BatchResults, claiming []*claimMember) error {
	err := readGroupAnswers(br, claiming)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

func readGroupAnswers(br pgx.BatchResults, claiming []*claimMember) error {
	for range 2 { // BEGIN, settings
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	locked, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil {
		return fmt.Errorf("locks: %w", err)
	}
	if len(locked) != len(claiming) {
		return fmt.Errorf("locks: %d answers for %d keys", len(locked), len(claiming))
	}
	rows, err = br.Query()
	if err != nil {
		return err
	}
	var i int
	var result []byte
	if _, err := pgx.ForEachRow(rows, []any{&i, &result}, func() error {
		if i < 1 || i > len(claiming) {
			return fmt.Errorf("lookup: answer for key %d of %d", i, len(claiming))
		}
		m := claiming[i-1]
		m.isDone, m.recorded = true, result
		result = nil
		return nil
	}); err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	for j, m := range claiming {
		if !locked[j] {
			// Another run holds it: claim it alone, waiting. A row seen
			// without the lock is a committed one, so it is also final.
			m.alone = !m.isDone
		}
	}
	return nil
}

// end records that m's effect has ended (err nil: it succeeded). The last
// member to end records the group's results and commits, which releases
// every lock; the others wait for it in onceGrouped.
func (g *claimGroup) end(l *Ledger, m *claimMember, err error) {
	g.mu.Lock()
	if err == nil {
		g.done = append(g.done, m)
	}
	g.running--
	last := g.running == 0
	g.mu.Unlock()
	if !last {
		return
	}
	defer close(g.committed) // also if record panics: no member waits for ever
	defer g.conn.Release()
	g.commitErr = errors.New("ledger record panicked")
	for _, d := range g.done {
		d.keptErr = g.commitErr // until recorded
	}
	if g.commitErr = g.record(); g.commitErr == nil {
		return
	}
	// The group's record failed (its connection went away, say): the
	// claims are gone, but the effects are done, so each is recorded
	// alone, as OnceFresh does — here, by the last member, so also the
	// results of callers that stopped waiting for the group. A run that
	// took a claim meanwhile may have recorded first; its result is kept.
	for _, d := range g.done {
		d.kept, d.keptErr = l.recordAfterLostClaim(context.Background(), d.k, d.result, g.commitErr)
	}
}

// record inserts the results of the group's succeeded effects and commits,
// in one round trip, even if the callers are being shut down meanwhile
// (bounded, as OnceFresh's record is).
func (g *claimGroup) record() error {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	c := g.conn.Conn()
	defer postgres.RollbackOpen(ctx, c)
	batch := &pgx.Batch{}
	if len(g.done) > 0 {
		n := len(g.done)
		consumers, ids, effects, results := make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
		for i, m := range g.done {
			consumers[i], ids[i], effects[i], results[i] = m.k.Consumer, m.k.MessageID, m.k.Effect, m.result
		}
		batch.Queue(insertAllSQL, consumers, ids, effects, results)
	}
	batch.Queue("COMMIT")
	br := c.SendBatch(ctx, batch)
	err := readCommit(br, len(g.done) > 0)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// readCommit reads a record's answers: the insert, if any, then COMMIT.
func readCommit(br pgx.BatchResults, inserted bool) error {
	if inserted {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	return postgres.ReadCommit(br)
}

// recordAfterLostClaim records k's result after its claim's connection
// failed under it (err), and returns the result kept.
func (l *Ledger) recordAfterLostClaim(ctx context.Context, k Key, result []byte, err error) ([]byte, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if rerr := l.Record(rctx, k, result); rerr != nil {
		return nil, errors.Join(fmt.Errorf("ledger record %s: %w", k, err), rerr)
	}
	if kept, done, lerr := l.Lookup(rctx, k); lerr == nil && done {
		return kept, nil
	}
	return result, nil
}

const (
	// tryLockAllSQL tries each key's claim lock ($1, claimKey names), in
	// order, answering whether it got it: a try never waits, so the order
	// cannot deadlock.
	tryLockAllSQL = `SELECT pg_try_advisory_xact_lock(hashtextextended(($1::text[])[i], 0)) FROM generate_subscripts($1::text[], 1) i ORDER BY i`
	// lookupAllSQL answers, for each key done already, its position (from
	// 1) and result: a probe of the primary key per key, never a join that
	// may hash the whole table (OFFSET 0 keeps the planner from flattening
	// the LATERAL subquery into one; TestClaimGroupStatementsUseTheIndex).
	lookupAllSQL = `SELECT i, d.result FROM generate_subscripts($1::text[], 1) i
		CROSS JOIN LATERAL (SELECT result FROM done_effects
			WHERE consumer = ($1::text[])[i] AND message_id = ($2::text[])[i] AND effect = ($3::text[])[i] OFFSET 0) d`
	insertMarksSQL = `INSERT INTO done_effects (consumer, message_id, effect)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
		ON CONFLICT (consumer, message_id, effect) DO NOTHING RETURNING consumer, message_id, effect`
	insertAllSQL = `INSERT INTO done_effects (consumer, message_id, effect, result)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
		ON CONFLICT (consumer, message_id, effect) DO NOTHING`
)
