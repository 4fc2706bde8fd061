// Package ledger is the done-effects ledger: the PostgreSQL record, with no
// expiry, of every side effect a consumer has completed, keyed by
// (consumer, message id, effect). JetStream's Nats-Msg-Id window is minutes
// to hours; Stripe retries for three days and operators replay dead letters
// weeks later, so the ledger is what makes "nothing done twice" hold.
//
// # Crash-safety contract
//
// A consumer handles a message in up to four steps: do the effect, write the
// ledger row, publish the outcome, ack. The process may die between any two.
// On redelivery the handler runs again from the top, and:
//
//   - Effects inside PostgreSQL (identity links, projections) are written in
//     the same transaction as their ledger row (RecordTx): both or neither
//     happen, so they happen exactly once.
//   - Effects outside (a CRM upsert, a ticket) go through Once: a recorded
//     effect is skipped and its recorded result returned. A crash after the
//     effect but before its row means the effect runs again, so every
//     external effect must also be idempotent by its own key (upsert by
//     email, ticket external_id looked up before create). The ledger makes
//     the repeat rare; the natural key makes it harmless.
//   - Outcomes are published with a message id derived from the source
//     message and the effect, so a re-publish is dropped by JetStream within
//     its window and by the next consumer's ledger after it.
//   - The ack is last: a lost ack is a redelivery, which the above absorbs.
//
// # Concurrency: one run of an effect at a time
//
// Two deliveries of one message can be in flight at once: AckWait expiring
// under a handler, a replay while the original is retried, two replicas.
// Once therefore claims its key before the effect: it holds a
// transaction-scoped advisory lock on the key (pg_advisory_xact_lock) on a
// connection of its own from lookup through effect to the insert of the
// row and COMMIT. A second Once of the same key, in this process or
// another, waits for the lock, then finds the row and returns the recorded
// result without running the effect; it is not a failure. If the holder's
// effect fails, the lock is released with nothing recorded and the waiter
// runs the effect itself.
//
// A lock, not an in-progress row with a lease, because its crash behaviour
// needs no timing: a process that dies (kill -9 included) drops its
// connection and PostgreSQL releases the lock at once, so the next delivery
// runs the effect — the crash case above, absorbed by the natural key. The
// cost is a connection per effect in flight, idle in its transaction while
// the vendor answers (READ COMMITTED, so it holds back no vacuum; the
// claim turns idle_in_transaction_session_timeout off for itself, or the
// server would drop the claim under a slow effect). Give a consumer with
// many workers its own claim pool (OpenClaimPool, WithClaimPool) of one
// connection per worker, so effects in flight never starve the service's
// other queries (readiness, failure history); an effect must not need a
// connection from the pool its claim is held on. A waiter gives up after
// ClaimWait with a transient error (the message is retried), so a claim
// held by a host that vanished without closing its connection (until the
// server's TCP keepalive notices) delays, but does not wedge, the key.
//
// A ledger WithClaimGroups shares claims between effects started
// together: one transaction, two round trips and one commit per group
// instead of per effect. Each effect still runs at most once and is
// returned only once recorded; what a group couples (its members return
// with its slowest effect, a failed claim round trip fails them all) is
// in WithClaimGroups' doc.
//
// Effects recorded with RecordTx are not claimed: their transaction and the
// unique row make them once already. The ledger is safe for concurrent use.
package ledger

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates or updates the ledger tables.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return postgres.MigrateDir(ctx, pool, "ledger", migrations, "migrations")
}

// Key names one side effect.
type Key struct {
	Consumer  string // durable consumer name
	MessageID string // source message id (Nats-Msg-Id)
	Effect    string // what was done, e.g. "hubspot.upsert"
}

func (k Key) String() string { return k.Consumer + "/" + k.MessageID + "/" + k.Effect }

// Ledger reads and writes done effects.
type Ledger struct {
	pool      *pgxpool.Pool
	claims    *pgxpool.Pool // Once's claims; pool unless WithClaimPool
	claimWait time.Duration
	// lockTimeoutSetting is claimWait as a claim's lock_timeout value,
	// made once.
	lockTimeoutSetting string
	groups             *gatherer[*claimMember, *claimGroup] // claims share transactions (WithClaimGroups); nil: each its own
	marks              *gatherer[Key, *markGroup]           // attempt marks share statements (WithClaimGroups)
}

// Option configures a Ledger.
type Option func(*Ledger)

// WithClaimPool makes Once hold its claims on connections of claims instead
// of the ledger's pool (see the package doc and OpenClaimPool).
func WithClaimPool(claims *pgxpool.Pool) Option { return func(l *Ledger) { l.claims = claims } }

// WithClaimWait replaces ClaimWait, the longest Once waits for another run
// of its key.
func WithClaimWait(d time.Duration) Option { return func(l *Ledger) { l.claimWait = d } }

// New returns a Ledger over pool. Call Migrate first.
func New(pool *pgxpool.Pool, opts ...Option) *Ledger {
	l := &Ledger{pool: pool, claims: pool, claimWait: ClaimWait}
	for _, o := range opts {
		o(l)
	}
	l.lockTimeoutSetting = fmt.Sprintf("%dms", max(l.claimWait.Milliseconds(), 1))
	return l
}

// OpenClaimPool opens a pool for WithClaimPool: pool's server, credentials
// and settings, at most n connections (one per worker that may run Once),
// each opened when first needed. The caller closes it, after the consumers
// that use it have stopped.
func OpenClaimPool(ctx context.Context, pool *pgxpool.Pool, n int) (*pgxpool.Pool, error) {
	cfg := pool.Config()
	cfg.MaxConns = int32(max(n, 1))
	cfg.MinConns = 0
	claims, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger claim pool: %w", err)
	}
	return claims, nil
}

// Lookup returns the recorded result of k and whether k is done.
func (l *Ledger) Lookup(ctx context.Context, k Key) ([]byte, bool, error) {
	var result []byte
	err := l.pool.QueryRow(ctx, lookupSQL, k.Consumer, k.MessageID, k.Effect).Scan(&result)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("ledger lookup %s: %w", k, err)
	}
	return result, true, nil
}

// AttemptMark is the effect name of the mark that effect may have been
// started — a request that may have reached a vendor — recorded before the
// request leaves, so a later run knows to look before it acts again. A mark
// is a ledger row like any other, but it says nothing is done: Done leaves
// marks out, so a replay's dry run lists only the effects a replay skips.
func AttemptMark(effect string) string { return attemptPrefix + effect }

const attemptPrefix = "attempt:"

// MarkAttempt records the attempt mark of k's effect (AttemptMark) and
// reports whether it is the first: false means an earlier run may have
// started the effect. One round trip; with claim groups (WithClaimGroups)
// one statement shared with the marks other callers make meanwhile.
func (l *Ledger) MarkAttempt(ctx context.Context, k Key) (first bool, err error) {
	k.Effect = AttemptMark(k.Effect)
	if l.marks != nil {
		return l.markGrouped(ctx, k)
	}
	tag, err := l.pool.Exec(ctx, insertSQL, k.Consumer, k.MessageID, k.Effect, nil)
	if err != nil {
		return false, fmt.Errorf("ledger mark %s: %w", k, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Record marks k done with result. Recording twice keeps the first result.
func (l *Ledger) Record(ctx context.Context, k Key, result []byte) error {
	if _, err := l.pool.Exec(ctx, insertSQL, k.Consumer, k.MessageID, k.Effect, result); err != nil {
		return fmt.Errorf("ledger record %s: %w", k, err)
	}
	return nil
}

// RecordTx marks k done inside tx, so a database effect and its ledger row
// commit together. It reports false if k was already done, in which case the
// caller should roll back its effect (it ran before).
func (l *Ledger) RecordTx(ctx context.Context, tx pgx.Tx, k Key, result []byte) (bool, error) {
	tag, err := tx.Exec(ctx, insertSQL, k.Consumer, k.MessageID, k.Effect, result)
	if err != nil {
		return false, fmt.Errorf("ledger record %s: %w", k, err)
	}
	return tag.RowsAffected() == 1, nil
}

const insertSQL = `INSERT INTO done_effects (consumer, message_id, effect, result) VALUES ($1, $2, $3, $4)
	ON CONFLICT (consumer, message_id, effect) DO NOTHING`

// ClaimWait bounds how long Once waits for another run of the same key to
// finish before it gives up with a transient error (WithClaimWait changes
// it): longer than any effect takes, rate limiters and retries included.
const ClaimWait = 5 * time.Minute

// ErrClaimWait is returned (wrapped, and marked transient) when another run
// of the key held it for longer than ClaimWait.
var ErrClaimWait = errors.New("another run of this effect is still in progress")

// Once runs effect unless k is already done, records its result, and
// returns it (or the recorded one). It claims k first, so concurrent calls
// for k, in any process, run effect at most once between them: the others
// wait and return its recorded result (see the package doc). A failed
// effect records nothing and releases the claim. See the package doc for
// what a crash between effect and record means.
func (l *Ledger) Once(ctx context.Context, k Key, effect func(context.Context) ([]byte, error)) ([]byte, error) {
	// Done already (the usual redelivery): no claim needed.
	if result, done, err := l.Lookup(ctx, k); err != nil || done {
		return result, err
	}
	return l.OnceFresh(ctx, k, effect)
}

// OnceFresh is Once for a key the caller has not tried before (its
// message's first delivery): it skips the lookup ahead of the claim, which
// only spares a redelivery of a done effect the claim, and so costs
// PostgreSQL two round trips instead of three. The claim looks k up again
// under its lock, so a key that is done after all costs a claim, never a
// second effect.
func (l *Ledger) OnceFresh(ctx context.Context, k Key, effect func(context.Context) ([]byte, error)) ([]byte, error) {
	if l.groups != nil {
		return l.onceGrouped(ctx, k, effect)
	}
	return l.onceAlone(ctx, k, effect)
}

// onceAlone is OnceFresh on a claim of k's own.
func (l *Ledger) onceAlone(ctx context.Context, k Key, effect func(context.Context) ([]byte, error)) ([]byte, error) {
	conn, err := l.claims.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger claim %s: %w", k, err)
	}
	defer conn.Release()
	// The claim's transaction is opened and closed by statements in
	// pipelines, not by round trips of their own (as identity's resolveTx
	// does): BEGIN travels with the claim, COMMIT with the record. Three
	// round trips for a fresh effect, the lookup above included.
	c := conn.Conn()
	// A claim left open (a failed effect, a cancelled caller) is released
	// by rolling it back, or by closing the connection if that fails.
	defer postgres.RollbackOpen(ctx, c)
	recorded, done, err := l.claim(ctx, c, k)
	if err != nil || done {
		return recorded, err
	}
	result, err := effect(ctx)
	if err != nil {
		return nil, err
	}
	// The effect has happened: record it even if the caller is being shut
	// down meanwhile (SIGTERM right after a post), or the next delivery
	// does it again. Bounded, so a dead database cannot hold shutdown.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err = record(rctx, c, k, result); err == nil {
		return result, nil
	}
	// The claim's connection failed under us (the server restarted, say):
	// the claim is gone, but the effect is done, so record it anyway; a run
	// that took the claim meanwhile may have recorded first, and its
	// result is the one kept.
	return l.recordAfterLostClaim(ctx, k, result, err)
}

// claim is Once's second round trip, one pipeline on c (a connection with
// no transaction open): BEGIN; the claim's settings; the advisory lock on
// k; and the lookup of k under it, for a run before us may have finished
// while we waited. It returns the recorded result and true if k is done.
// On an error, or when k is done, the caller rolls back.
//
// The lookup in the same pipeline as the lock still sees what an earlier
// holder committed: the server runs a pipeline's statements strictly one
// after another, so it reaches the lookup only once the lock is granted —
// that is, after the earlier holder's COMMIT — and under READ COMMITTED
// each statement takes its own snapshot when it starts, not when it was
// sent, nor at BEGIN. Under REPEATABLE READ the snapshot would be the
// first statement's, taken before the lock, and a waiter would miss the
// holder's row and run the effect again: so BEGIN names READ COMMITTED
// rather than trust the server's default_transaction_isolation.
func (l *Ledger) claim(ctx context.Context, c *pgx.Conn, k Key) ([]byte, bool, error) {
	batch := &pgx.Batch{}
	batch.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	batch.Queue(claimSettingsSQL, l.lockTimeoutSetting)
	batch.Queue(claimSQL, claimKey(k))
	batch.Queue(lookupSQL, k.Consumer, k.MessageID, k.Effect)
	br := c.SendBatch(ctx, batch)
	recorded, done, err := readClaim(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return recorded, done, nil
	}
	// The first error of the pipeline ends it (the server skips the rest),
	// so a lock_timeout is the error whichever read met it.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available: lock_timeout
		return nil, false, errclass.Transient(fmt.Errorf("ledger claim %s: %w (waited %v)", k, ErrClaimWait, l.claimWait))
	}
	return nil, false, fmt.Errorf("ledger claim %s: %w", k, err)
}

// record is Once's third round trip, one pipeline on c: insert k's row and
// COMMIT, which ends the claim.
func record(ctx context.Context, c *pgx.Conn, k Key, result []byte) error {
	batch := &pgx.Batch{}
	batch.Queue(insertSQL, k.Consumer, k.MessageID, k.Effect, result)
	batch.Queue("COMMIT")
	br := c.SendBatch(ctx, batch)
	err := readCommit(br, true)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// readClaim reads claim's answers, in the order it queued them.
func readClaim(br pgx.BatchResults) ([]byte, bool, error) {
	for range 3 { // BEGIN, settings, lock
		if _, err := br.Exec(); err != nil {
			return nil, false, err
		}
	}
	var recorded []byte
	switch err := br.QueryRow().Scan(&recorded); {
	case err == nil:
		return recorded, true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("lookup: %w", err)
	}
}

const (
	lookupSQL = `SELECT result FROM done_effects WHERE consumer = $1 AND message_id = $2 AND effect = $3`
	// The claim is an idle transaction while the effect runs: the server
	// must not end it for that, and a waiter gives up after ClaimWait.
	claimSettingsSQL = `SELECT set_config('lock_timeout', $1, true), set_config('idle_in_transaction_session_timeout', '0', true)`
	claimSQL         = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`
)

// claimKey is the advisory lock's name for k, apart from other advisory
// locks taken on the same key string (the daily digest's).
func claimKey(k Key) string { return "switchyard.ledger.claim/" + k.String() }

// recordTimeout bounds recording an effect that is already done.
const recordTimeout = 10 * time.Second

// Failure is the retry history of one message.
type Failure struct {
	Attempts       int
	FirstFailureAt time.Time
	LastFailureAt  time.Time
	LastClass      string
	LastReason     string
}

// RecordFailure adds a failed attempt to the message's history and returns it.
func (l *Ledger) RecordFailure(ctx context.Context, consumer, messageID, class, reason string, at time.Time) (Failure, error) {
	var f Failure
	err := l.pool.QueryRow(ctx, `
		INSERT INTO message_failures (consumer, message_id, attempts, first_failure_at, last_failure_at, last_class, last_reason)
		VALUES ($1, $2, 1, $3, $3, $4, $5)
		ON CONFLICT (consumer, message_id) DO UPDATE SET
			attempts = message_failures.attempts + 1,
			last_failure_at = EXCLUDED.last_failure_at,
			last_class = EXCLUDED.last_class,
			last_reason = EXCLUDED.last_reason
		RETURNING attempts, first_failure_at, last_failure_at, last_class, last_reason`,
		consumer, messageID, at, class, reason).Scan(&f.Attempts, &f.FirstFailureAt, &f.LastFailureAt, &f.LastClass, &f.LastReason)
	if err != nil {
		return Failure{}, fmt.Errorf("ledger record failure %s/%s: %w", consumer, messageID, err)
	}
	return f, nil
}

// ClearFailures forgets a message's retry history once it is handled or
// dead-lettered.
func (l *Ledger) ClearFailures(ctx context.Context, consumer, messageID string) error {
	if _, err := l.pool.Exec(ctx, `DELETE FROM message_failures WHERE consumer = $1 AND message_id = $2`, consumer, messageID); err != nil {
		return fmt.Errorf("ledger clear failures %s/%s: %w", consumer, messageID, err)
	}
	return nil
}

// DoneEffect is one effect recorded as done for a message.
type DoneEffect struct {
	Effect string
	DoneAt time.Time
}

// Done lists the effects recorded for a consumer's message, oldest first:
// what a replay of that message would skip.
func (l *Ledger) Done(ctx context.Context, consumer, messageID string) ([]DoneEffect, error) {
	rows, err := l.pool.Query(ctx, `SELECT effect, done_at FROM done_effects WHERE consumer = $1 AND message_id = $2 AND effect NOT LIKE $3 ORDER BY done_at, effect`,
		consumer, messageID, attemptPrefix+"%")
	if err != nil {
		return nil, fmt.Errorf("ledger done effects: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DoneEffect, error) {
		var d DoneEffect
		return d, r.Scan(&d.Effect, &d.DoneAt)
	})
	if err != nil {
		return nil, fmt.Errorf("ledger done effects: %w", err)
	}
	return out, nil
}
