package ops

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// authFailures is the throttle's shared count of failed authentications
// (opsauth.FailureLog) in ops_auth_failures: every replica of the status
// API and console counts the same failures, and a restart forgets none.
type authFailures struct {
	pool   *pgxpool.Pool
	window time.Duration // rows older than this are deleted
}

func (l authFailures) Failures(ctx context.Context, keys []string, since time.Time, limit int) (map[string][]time.Time, error) {
	rows, err := l.pool.Query(ctx, `SELECT key, at FROM (
			SELECT key, at, row_number() OVER (PARTITION BY key ORDER BY at DESC) AS n
			FROM ops_auth_failures WHERE key = ANY($1) AND at >= $2) recent
		WHERE n <= $3 ORDER BY key, at`, keys, since, limit)
	if err != nil {
		return nil, err
	}
	out := map[string][]time.Time{}
	var key string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&key, &at}, func() error { out[key] = append(out[key], at); return nil })
	return out, err
}

func (l authFailures) Record(ctx context.Context, keys []string, at time.Time) error {
	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(`INSERT INTO ops_auth_failures (key, at) VALUES ($1, $2)`, k, at)
	}
	b.Queue(`DELETE FROM ops_auth_failures WHERE at < $1`, at.Add(-l.window))
	return l.pool.SendBatch(ctx, b).Close()
}
