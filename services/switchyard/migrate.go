package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/services/switchyard/migration"
)

const migrateLong = `Creates or updates what the services need and never change themselves: the
JetStream streams and durable consumers of the catalogue in platform/natsbus,
and every service's PostgreSQL tables. Services only check at start, and
refuse to start until this has run. Safe to run again, and concurrently; it
prints what it created, updated or found unchanged, and exits 1 on failure.

  NATS_URL, NATS_CREDS     the broker (default nats://127.0.0.1:4222)
  NATS_STREAM_REPLICAS     stream replicas (default 1; 3 on a cluster)
  NATS_DUPLICATE_WINDOW    JetStream dedup window (default 1h)
  NATS_STREAM_MAX_AGE      retention of every stream but the DLQ (default 0 = forever)
  NATS_DLQ_MAX_MB          the dead letters' size bound (default 1024)
  IDENTITY_CONSUMER        identity's durable name, if it runs under another (default identity)
  DATABASE_URL             PostgreSQL (required unless --nats-only; DATABASE_URL_FILE works too)
`

// newMigrateCmd is `switchyard migrate`.
func newMigrateCmd(c *cliIO) *cobra.Command {
	var asJSON, natsOnly bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "create or update the streams, consumers and tables the services need",
		Long:  migrateLong,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return migrateCmd(cmd.Context(), c.getenv, c.stdout, asJSON, natsOnly)
		},
	}
	jsonFlag(cmd.Flags(), &asJSON)
	cmd.Flags().BoolVar(&natsOnly, "nats-only", false, "only the streams and consumers, no database (a gateway benchmark, a rebuilt NATS cluster)")
	return cmd
}

// migrateCmd runs the migration and prints its report.
func migrateCmd(ctx context.Context, getenv func(string) string, stdout io.Writer, asJSON, natsOnly bool) error {
	cfg, err := migration.LoadConfig(getenv, natsOnly)
	if err != nil {
		return withCode(codeInvalid, fmt.Errorf("migrate config: %w", err))
	}
	rep, err := migration.Run(ctx, cfg)
	if asJSON {
		if jerr := writeJSON(stdout, rep); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else {
		rep.WriteText(stdout)
	}
	return err
}
