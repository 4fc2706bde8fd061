// Package migrations is the projector's SQL, with no service code: the ops
// tables (audit log, console sessions, auth failures), which the migration
// runner applies in order, and the projection's schema, which is derived
// data: created whole, stamped with its view version, and rebuilt from the
// streams rather than migrated when that version changes. The projector
// applies both when it starts; `switchyard migrate` and `switchyard doctor`
// use this package without importing the service.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/postgres"
)

// FS holds the ops tables' migrations (NNNN_name.sql at its root): tables
// that are not derived from the streams and so survive a rebuild.
//
//go:embed *.sql
var FS embed.FS

// Ops creates or updates the ops tables (the migration runner's service
// "projector"): the projector does at start, and so does
// `switchyard migrate`.
func Ops(ctx context.Context, pool *pgxpool.Pool) error {
	return postgres.MigrateDir(ctx, pool, "projector", FS, ".")
}

// Schema is where the live projection's tables are.
const Schema = "projection"

// ViewVersion is the version of what the projection stores: the view
// documents and the state column the fold writes. A projection written by
// another version is rebuilt rather than migrated (the projector starts
// that rebuild when it starts; the old views keep being served until it
// swaps in). Bump it with any change to what the fold stores.
const ViewVersion = 3

// Advisory locks. Every apply holds the swap lock shared; a rebuild takes
// it exclusively to catch up and swap, and Projection takes it to
// serialise with another replica starting. The two-key form keeps these
// apart from the per-customer locks (one bigint key).
const (
	LockSpace = 0x53590000 // "SY"
	LockSwap  = 1
)

//go:embed projection/tables.sql
var tablesDDL string

//go:embed projection/indexes.sql
var indexDDL string

// stampDDL records ViewVersion on a projection schema created with it.
var stampDDL = fmt.Sprintf(`COMMENT ON SCHEMA {{s}} IS 'switchyard projection, view version %d'`, ViewVersion)

// TablesDDL creates the projection's tables in schema; stamped, it also
// records ViewVersion on the schema.
func TablesDDL(schema string, stamped bool) string {
	stmts := tablesDDL
	if stamped {
		stmts += ";" + stampDDL
	}
	return ddl(stmts, schema)
}

// IndexDDL creates the projection's indexes in schema, one statement a
// line (comment lines start with --).
func IndexDDL(schema string) string { return ddl(indexDDL, schema) }

func ddl(tmpl, schema string) string {
	return strings.ReplaceAll(tmpl, "{{s}}", pgx.Identifier{schema}.Sanitize())
}

// Projection creates the live projection's tables if they do not exist,
// and stamps a new projection with ViewVersion.
func Projection(ctx context.Context, pool *pgxpool.Pool) error {
	// Serialise with a concurrent start of another replica.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("projection schema: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", LockSpace, LockSwap); err != nil {
		return fmt.Errorf("projection schema: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{Schema, "customers"}.Sanitize()).Scan(&exists); err != nil {
		return fmt.Errorf("projection schema: %w", err)
	}
	if _, err := tx.Exec(ctx, TablesDDL(Schema, !exists)+";"+IndexDDL(Schema)); err != nil {
		return fmt.Errorf("projection schema: %w", err)
	}
	return tx.Commit(ctx)
}

// StoredViewVersion is the view version the live projection was written
// with (0 for one from before versions were recorded).
func StoredViewVersion(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var comment *string
	if err := pool.QueryRow(ctx, "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1", Schema).Scan(&comment); err != nil {
		return 0, fmt.Errorf("projection version: %w", err)
	}
	var v int
	if comment != nil {
		_, _ = fmt.Sscanf(*comment, "switchyard projection, view version %d", &v)
	}
	return v, nil
}
