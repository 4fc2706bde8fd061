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
// The ledger is safe for concurrent use; two deliveries of one message
// racing each other may both run an external effect (see above), but only
// one row is kept.
package ledger

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
type Ledger struct{ pool *pgxpool.Pool }

// New returns a Ledger over pool. Call Migrate first.
func New(pool *pgxpool.Pool) *Ledger { return &Ledger{pool: pool} }

// Lookup returns the recorded result of k and whether k is done.
func (l *Ledger) Lookup(ctx context.Context, k Key) ([]byte, bool, error) {
	var result []byte
	err := l.pool.QueryRow(ctx, `SELECT result FROM done_effects WHERE consumer = $1 AND message_id = $2 AND effect = $3`,
		k.Consumer, k.MessageID, k.Effect).Scan(&result)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("ledger lookup %s: %w", k, err)
	}
	return result, true, nil
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

// Once runs effect unless k is already done, records its result, and
// returns it (or the recorded one). See the package doc for what a crash
// between effect and record means.
func (l *Ledger) Once(ctx context.Context, k Key, effect func(context.Context) ([]byte, error)) ([]byte, error) {
	if result, done, err := l.Lookup(ctx, k); err != nil || done {
		return result, err
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
	if err := l.Record(rctx, k, result); err != nil {
		return nil, err
	}
	return result, nil
}

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
	rows, err := l.pool.Query(ctx, `SELECT effect, done_at FROM done_effects WHERE consumer = $1 AND message_id = $2 ORDER BY done_at, effect`, consumer, messageID)
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
