package alerts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/services/alerts/migrations"
)

// Migrate creates or updates the alerter's tables (the service does at
// start; so does `switchyard migrate`, through the migrations package).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error { return migrations.Migrate(ctx, pool) }

// state is the alerter's memory in PostgreSQL, so that replicas fold into
// one another's alerts, one storm alert goes out a minute whichever
// replica counts the retry that makes it, and a restart forgets nothing.
// Times come from the alerter's clock, not the database's.
type state struct {
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
}

// admit decides, for every replica at once, whether an alert of kind goes
// out now: it does when critical, or when none went out within window;
// then it returns how many were folded since. Otherwise the alert is
// folded — counted, and key recorded in the ledger in the same
// transaction, so a redelivery of the message is not counted twice.
func (s state) admit(ctx context.Context, kind string, critical bool, now time.Time, window time.Duration, key ledger.Key) (folded int, send bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO alert_kinds (kind) VALUES ($1) ON CONFLICT DO NOTHING`, kind); err != nil {
			return err
		}
		var last *time.Time
		var suppressed int
		if err := tx.QueryRow(ctx, `SELECT last_sent, suppressed FROM alert_kinds WHERE kind = $1 FOR UPDATE`, kind).Scan(&last, &suppressed); err != nil {
			return err
		}
		if !critical && last != nil && now.Sub(*last) < window {
			first, err := s.ledger.RecordTx(ctx, tx, key, []byte("folded"))
			if err != nil || !first {
				return err // folded before: nothing to count
			}
			_, err = tx.Exec(ctx, `UPDATE alert_kinds SET suppressed = suppressed + 1 WHERE kind = $1`, kind)
			return err
		}
		folded, send = suppressed, true
		_, err := tx.Exec(ctx, `UPDATE alert_kinds SET last_sent = $2, suppressed = 0 WHERE kind = $1`, kind, now)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("alert state: %w", err)
	}
	return folded, send, nil
}

// unadmit undoes admit after a failed post, so the retry is sent and
// still reports what was folded into it.
func (s state) unadmit(ctx context.Context, kind string, folded int) error {
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE alert_kinds SET last_sent = NULL, suppressed = suppressed + $2 WHERE kind = $1`, kind, folded)
	return err
}

// due takes the folded counts whose kind has had no alert within window
// (each count is taken by one replica only) and marks them reported now.
func (s state) due(ctx context.Context, now time.Time, window time.Duration) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT kind, suppressed FROM alert_kinds
			WHERE suppressed > 0 AND (last_sent IS NULL OR last_sent <= $1)
			FOR UPDATE SKIP LOCKED)
		UPDATE alert_kinds a SET suppressed = 0, last_sent = $2 FROM due WHERE a.kind = due.kind
		RETURNING a.kind, due.suppressed`, now.Add(-window), now)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	var kind string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&kind, &n}, func() error { out[kind] = n; return nil })
	return out, err
}

// restore gives back a count due took when its summary could not be posted.
func (s state) restore(ctx context.Context, kind string, n int) error {
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE alert_kinds SET suppressed = suppressed + $2, last_sent = NULL WHERE kind = $1`, kind, n)
	return err
}

// stormRetry counts a CRM retry outcome (once per message id: first says
// this delivery was the first) and returns how many came within the
// minute up to now.
func (s state) stormRetry(ctx context.Context, messageID string, now time.Time) (n int, first bool, err error) {
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO alert_crm_retries (message_id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, messageID, now)
	b.Queue(`DELETE FROM alert_crm_retries WHERE at < $1`, now.Add(-10*time.Minute))
	b.Queue(`SELECT count(*) FROM alert_crm_retries WHERE at > $1 AND at <= $2`, now.Add(-time.Minute), now)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	tag, err := br.Exec()
	if err != nil {
		return 0, false, err
	}
	if _, err := br.Exec(); err != nil {
		return 0, false, err
	}
	if err := br.QueryRow().Scan(&n); err != nil {
		return 0, false, err
	}
	return n, tag.RowsAffected() == 1, br.Close()
}

// stormStart lets one replica alert a storm of name: true when none was
// under way (it is now, started at now with the retries of its first
// minute).
func (s state) stormStart(ctx context.Context, name string, now time.Time, retries int) (bool, error) {
	var one int
	err := s.pool.QueryRow(ctx, `INSERT INTO alert_storms (name, active, started_at, last_alert, retries) VALUES ($1, true, $2, $2, $3)
		ON CONFLICT (name) DO UPDATE SET active = true, started_at = $2, last_alert = $2, retries = $3 WHERE NOT alert_storms.active
		RETURNING 1`, name, now, retries).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// stormCount counts a retry into the storm under way, if any.
func (s state) stormCount(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `UPDATE alert_storms SET retries = retries + 1 WHERE name = $1 AND active`, name)
	return err
}

// stormUndo ends the storm stormStart began, after its alert could not be
// posted, so the next retry outcome starts it again.
func (s state) stormUndo(ctx context.Context, name string, started time.Time) error {
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE alert_storms SET active = false WHERE name = $1 AND started_at = $2`, name, started)
	return err
}

// storm is a storm under way or just over.
type storm struct {
	startedAt time.Time
	retries   int
}

// stormOver ends the storm of name when fewer than threshold retries came
// in the minute up to now (and it started over a minute ago); the replica
// that ends it gets it, to say so.
func (s state) stormOver(ctx context.Context, name string, now time.Time, threshold int) (*storm, error) {
	var st storm
	err := s.pool.QueryRow(ctx, `UPDATE alert_storms SET active = false
		WHERE name = $1 AND active AND started_at <= $2
		  AND (SELECT count(*) FROM alert_crm_retries WHERE at > $2 AND at <= $3) < $4
		RETURNING started_at, retries`, name, now.Add(-time.Minute), now, threshold).Scan(&st.startedAt, &st.retries)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// stormReopen undoes stormOver after its message could not be posted.
func (s state) stormReopen(ctx context.Context, name string, st storm) error {
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE alert_storms SET active = true WHERE name = $1 AND started_at = $2`, name, st.startedAt)
	return err
}

// stormReminder takes the storm of name for an hourly reminder: one still
// under way whose last alert is an hour old (now recorded as the last).
func (s state) stormReminder(ctx context.Context, name string, now time.Time) (*storm, error) {
	var st storm
	err := s.pool.QueryRow(ctx, `UPDATE alert_storms SET last_alert = $2
		WHERE name = $1 AND active AND last_alert <= $3
		RETURNING started_at, retries`, name, now, now.Add(-time.Hour)).Scan(&st.startedAt, &st.retries)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}
