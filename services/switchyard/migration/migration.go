// Package migration is `switchyard migrate`: the one step that creates and
// changes what the services need and only check for at start — the
// streams and durable consumers of platform/natsbus's catalogue, and every
// service's PostgreSQL tables. `switchyard dev` runs it before it starts
// the services; compose runs it as a one-shot service they all wait for.
package migration

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	alertsmigrations "github.com/switchyard/switchyard/services/alerts/migrations"
	identitymigrations "github.com/switchyard/switchyard/services/identity/migrations"
	projmigrations "github.com/switchyard/switchyard/services/projector/migrations"
)

// Report is what Run found and did.
type Report struct {
	NATS     []natsbus.Change `json:"nats"`
	Postgres []SQLChange      `json:"postgres"`
}

// SQLChange is one service's tables: natsbus.Created (none before),
// natsbus.Updated (Applied new migrations) or natsbus.Unchanged.
type SQLChange struct {
	Name    string `json:"name"`
	Action  string `json:"action"`
	Applied int    `json:"applied,omitempty"` // migrations applied now
}

// Counts says how many streams, consumers and services' tables were
// created, updated and left as they were.
func (m Report) Counts() (created, updated, unchanged int) {
	count := func(action string) {
		switch action {
		case natsbus.Created:
			created++
		case natsbus.Updated:
			updated++
		default:
			unchanged++
		}
	}
	for _, c := range m.NATS {
		count(c.Action)
	}
	for _, c := range m.Postgres {
		count(c.Action)
	}
	return created, updated, unchanged
}

// Summary is Counts in one line.
func (m Report) Summary() string {
	c, u, n := m.Counts()
	return fmt.Sprintf("%d created, %d updated, %d unchanged", c, u, n)
}

// WriteText writes the report a line per stream, consumer and service's
// tables, then the summary.
func (m Report) WriteText(w io.Writer) {
	for _, c := range m.NATS {
		fmt.Fprintln(w, "nats      "+c.String())
	}
	for _, c := range m.Postgres {
		line := c.Name + ": " + c.Action
		switch {
		case c.Applied == 1:
			line += " (1 migration applied)"
		case c.Applied > 1:
			line += fmt.Sprintf(" (%d migrations applied)", c.Applied)
		}
		fmt.Fprintln(w, "postgres  "+line)
	}
	fmt.Fprintln(w, "migrated: "+m.Summary())
}

// Config is what Run needs, from the environment.
type Config struct {
	NATS        natsbus.Options // NATS_URL, NATS_CREDS, the streams' settings and IDENTITY_CONSUMER
	DatabaseURL config.Secret   // DATABASE_URL
	// NATSOnly migrates the streams and consumers alone, with no database
	// (`--nats-only`: a benchmark of the gateway, a rebuilt NATS cluster).
	NATSOnly bool
}

// LoadConfig reads and validates the configuration:
//
//	NATS_URL, NATS_CREDS, NATS_STREAM_REPLICAS, NATS_DUPLICATE_WINDOW,
//	NATS_STREAM_MAX_AGE, NATS_DLQ_MAX_MB   (natsbus.OptionsFromEnv)
//	IDENTITY_CONSUMER                      identity's durable name (default identity)
//	DATABASE_URL                           PostgreSQL, required unless natsOnly (DATABASE_URL_FILE too)
func LoadConfig(getenv func(string) string, natsOnly bool) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{NATS: natsbus.OptionsFromEnv(r, "switchyard-migrate"), NATSOnly: natsOnly}
	c.NATS.IdentityConsumer = r.String("IDENTITY_CONSUMER", natsbus.ConsumerIdentity)
	if natsOnly {
		return c, r.Err()
	}
	if c.DatabaseURL = r.Secret("DATABASE_URL"); !c.DatabaseURL.IsSet() {
		r.Fail("DATABASE_URL", "required: the services' tables are migrated with the streams")
	}
	return c, r.Err()
}

// Run applies the JetStream catalogue and the SQL migrations. It does both
// even when one fails, and returns what it did with every error joined.
// It is idempotent and safe to run concurrently, also with services
// starting.
func Run(ctx context.Context, c Config) (Report, error) {
	m := Report{NATS: []natsbus.Change{}, Postgres: []SQLChange{}}
	natsErr := func() error {
		nc, err := natsbus.Connect(ctx, c.NATS)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		changes, err := natsbus.Migrate(ctx, js, c.NATS)
		m.NATS = append(m.NATS, changes...)
		return err
	}()
	if c.NATSOnly {
		return m, natsErr
	}
	var sqlErr error
	m.Postgres, sqlErr = migrateSQL(ctx, c.DatabaseURL.Reveal())
	return m, errors.Join(natsErr, sqlErr)
}

// migrateSQL runs every service's migrations, in the order a fresh
// database needs them; each is idempotent and safe against a service
// starting at the same time (the services still run theirs at start).
func migrateSQL(ctx context.Context, dbURL string) ([]SQLChange, error) {
	out := []SQLChange{}
	pool, err := postgres.OpenAs(ctx, dbURL, "switchyard-migrate", nil)
	if err != nil {
		return out, err
	}
	defer pool.Close()
	// The migration runner's steps are counted in its ledger table, by
	// service; the projection (derived data, rebuilt rather than migrated)
	// is created whole or found.
	steps := []struct {
		name    string // the runner's service name, or the projection's
		migrate func(context.Context, *pgxpool.Pool) error
	}{
		{"ledger", ledger.Migrate},
		{"identity", identitymigrations.Migrate},
		{"projector", projmigrations.Ops},
		{"alerts", alertsmigrations.Migrate},
	}
	for _, s := range steps {
		before, err := appliedMigrations(ctx, pool, s.name)
		if err != nil {
			return out, err
		}
		if err := s.migrate(ctx, pool); err != nil {
			return out, err
		}
		after, err := appliedMigrations(ctx, pool, s.name)
		if err != nil {
			return out, err
		}
		c := SQLChange{Name: s.name, Action: natsbus.Unchanged, Applied: after - before}
		switch {
		case c.Applied > 0 && before == 0:
			c.Action = natsbus.Created
		case c.Applied > 0:
			c.Action = natsbus.Updated
		}
		out = append(out, c)
	}
	var existed bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, projmigrations.Schema).Scan(&existed); err != nil {
		return out, fmt.Errorf("projection schema: %w", err)
	}
	if err := projmigrations.Projection(ctx, pool); err != nil {
		return out, err
	}
	c := SQLChange{Name: "projection", Action: natsbus.Unchanged}
	if !existed {
		c.Action = natsbus.Created
	}
	return append(out, c), nil
}

// appliedMigrations counts service's rows in the migration runner's table
// (none before the runner's first run anywhere).
func appliedMigrations(ctx context.Context, pool *pgxpool.Pool, service string) (int, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('switchyard_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM switchyard_migrations WHERE service = $1`, service).Scan(&n); err != nil {
		return 0, fmt.Errorf("read applied migrations of %s: %w", service, err)
	}
	return n, nil
}
