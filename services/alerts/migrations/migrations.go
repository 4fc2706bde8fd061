// Package migrations is the alerts service's SQL (NNNN_name.sql), with no
// service code: the service applies it when it starts, and
// `switchyard migrate` applies it without importing the service.
package migrations

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/postgres"
)

// FS holds the migrations, at its root.
//
//go:embed *.sql
var FS embed.FS

// Migrate creates or updates the alerts service's tables (the migration
// runner's service "alerts").
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return postgres.MigrateDir(ctx, pool, "alerts", FS, ".")
}
