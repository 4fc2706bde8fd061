package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchyard/switchyard/services/switchyard/migration"
)

const migrateUsage = `usage:
  switchyard migrate [--json] [--nats-only]

Creates or updates what the services need and never change themselves: the
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

// migrateCmd is `switchyard migrate`.
func migrateCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage) }
	asJSON := fs.Bool("json", false, "print JSON")
	natsOnly := fs.Bool("nats-only", false, "only the streams and consumers, no database (a gateway benchmark, a rebuilt NATS cluster)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil // fs.Usage printed it
	} else if err != nil || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := migration.LoadConfig(getenv, *natsOnly)
	if err != nil {
		return fmt.Errorf("migrate config: %w", err)
	}
	rep, err := migration.Run(ctx, cfg)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else {
		rep.WriteText(stdout)
	}
	return err
}
