package projector

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/postgres"
)

// migrations are the projector's own tables that are not derived from the
// streams and so survive a rebuild (the ops audit log, console sessions).
//
//go:embed migrations/*.sql
var migrations embed.FS

// MigrateOps creates or updates those tables: the projector does at start,
// and so does the CLI before it records an action it takes itself.
func MigrateOps(ctx context.Context, pool *pgxpool.Pool) error {
	return postgres.MigrateDir(ctx, pool, "projector", migrations, "migrations")
}
