package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector"
)

const rebuildUsage = `usage:
  switchyard rebuild [--ops URL] [--json]                ask the running projector to rebuild (operate token)
  switchyard rebuild --direct [--nats URL] [--json]      rebuild from here (DATABASE_URL, NATS_URL)

Replays the BILLING, CRM and SUPPORT streams into fresh tables and swaps them in
atomically; the live projection keeps serving and applying meanwhile. Prints the
events per second.
The ops token: SWITCHYARD_OPS_TOKEN, else the one 'switchyard dev' saved in --data.
`

// devTokenFile is where `dev` keeps its generated ops token line
// (name:scopes:token), in its data folder.
const devTokenFile = "ops-token"

func rebuildCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rebuildUsage) }
	opsURL := fs.String("ops", orDefault(getenv("SWITCHYARD_OPS_URL"), "http://127.0.0.1:8090"), "status API base URL")
	dataDir := fs.String("data", ".switchyard", "the dev hub's data folder (for its ops token, and its operator NATS identity with --direct)")
	direct := fs.Bool("direct", false, "rebuild in this process from DATABASE_URL and NATS_URL instead of asking the projector")
	natsURL := fs.String("nats", orDefault(getenv("NATS_URL"), "nats://127.0.0.1:4223"), "NATS URL (--direct)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return errUsage
	}
	var rep projector.RebuildReport
	var err error
	if *direct {
		var auth []nats.Option
		if auth, err = cliNATS(getenv, *dataDir); err == nil {
			rep, err = rebuildDirect(ctx, getenv("DATABASE_URL"), *natsURL, auth, cliActor(getenv), stderr)
		}
	} else {
		var tok string
		tok, err = opsToken(getenv, *dataDir)
		if err == nil {
			rep, err = rebuildRemote(ctx, *opsURL, tok)
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	_, err = fmt.Fprintf(stdout, "rebuilt the projection: %d events (%d duplicates, %d skipped, %d applied during the swap), %d customers, in %.2fs = %.0f events/s\n",
		rep.Events, rep.Duplicates, rep.Skipped, rep.CaughtUp, rep.Customers, rep.Seconds, rep.EventsPerSecond)
	return err
}

// rebuildDirect rebuilds from this process, recorded in the ops audit log
// under actor like a rebuild through the status API.
func rebuildDirect(ctx context.Context, dbURL, natsURL string, auth []nats.Option, actor string, stderr io.Writer) (rep projector.RebuildReport, err error) {
	if dbURL == "" {
		return projector.RebuildReport{}, errors.New("--direct needs DATABASE_URL")
	}
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		return projector.RebuildReport{}, err
	}
	defer pool.Close()
	if err := projector.Migrate(ctx, pool); err != nil {
		return projector.RebuildReport{}, err
	}
	nc, err := nats.Connect(natsURL, append(auth, nats.Name("switchyard-cli"), nats.Timeout(5*time.Second))...)
	if err != nil {
		return projector.RebuildReport{}, fmt.Errorf("connect %s: %w", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return projector.RebuildReport{}, err
	}
	if err := projector.MigrateOps(ctx, pool); err != nil {
		return projector.RebuildReport{}, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	con, err := projector.NewConsole(ctx, projector.ConsoleConfig{JetStream: js, Pool: pool, Logger: log, Meter: noop.NewMeterProvider()})
	if err != nil {
		return projector.RebuildReport{}, err
	}
	err = con.Audit(ctx, actor, "rebuild", "projection", func() (string, error) {
		rep, err = projector.Rebuild(ctx, pool, js, log)
		return fmt.Sprintf("%d events, %d customers, %.0f events/s", rep.Events, rep.Customers, rep.EventsPerSecond), err
	})
	return rep, err
}

func rebuildRemote(ctx context.Context, base, token string) (projector.RebuildReport, error) {
	var rep projector.RebuildReport
	err := newOpsClient(base, token, 0).do(ctx, http.MethodPost, "/v1/rebuild", &rep)
	return rep, err
}

// opsToken is the token the CLI presents: SWITCHYARD_OPS_TOKEN, else the
// dev hub's saved one.
func opsToken(getenv func(string) string, dataDir string) (string, error) {
	if t := strings.TrimSpace(getenv("SWITCHYARD_OPS_TOKEN")); t != "" {
		return t, nil
	}
	path := filepath.Join(dataDir, devTokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no ops token: set SWITCHYARD_OPS_TOKEN (or run 'switchyard dev', which saves one in %s)", path)
	}
	_, rest, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	_, tok, ok := strings.Cut(rest, ":")
	if !ok {
		return "", fmt.Errorf("%s: not name:scopes:token", path)
	}
	return tok, nil
}

// devOpsTokens returns SWITCHYARD_OPS_TOKENS for the dev hub: the
// configured ones, else a read+operate token generated once and saved in
// the data folder (0600) for the CLI.
func devOpsTokens(getenv func(string) string, dataDir string) (tokens, source string, err error) {
	if t := getenv("SWITCHYARD_OPS_TOKENS"); t != "" {
		return t, "from SWITCHYARD_OPS_TOKENS", nil
	}
	if getenv("SWITCHYARD_OPS_TOKENS_FILE") != "" {
		return "", "from SWITCHYARD_OPS_TOKENS_FILE", nil
	}
	path := filepath.Join(dataDir, devTokenFile)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), "saved in " + path, nil
	}
	line := "dev:read+operate:" + randomHex(24)
	if _, err := opsauth.Parse(line); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("save generated ops token: %w", err)
	}
	return line, "generated, saved in " + path, nil
}
