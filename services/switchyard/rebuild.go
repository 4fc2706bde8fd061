package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/services/projector/client"
)

const rebuildLong = `Asks the running projector to rebuild (an operate token). With no projector
running, rebuild from the projector's binary instead:
  projector rebuild --direct [--json]       (DATABASE_URL, NATS_URL; audited as cli:<user>)

Replays the BILLING, CRM and SUPPORT streams into fresh tables and swaps them in
atomically; the live projection keeps serving and applying meanwhile. Prints the
events per second.
The ops token: SWITCHYARD_OPS_TOKEN, else the one 'switchyard dev' saved in --data-dir.
`

// devTokenFile is where `dev` keeps its generated ops token line
// (name:scopes:token), in its data folder.
const devTokenFile = "ops-token"

// errRebuildDirect answers `rebuild --direct`: rebuilding from a process
// takes the projector's code, which the CLI does not link.
var errRebuildDirect = errors.New("rebuild --direct runs in the projector's binary: run `projector rebuild --direct` " +
	"with DATABASE_URL and NATS_URL (and NATS_USER/NATS_PASSWORD as the projector's NATS identity), or without --direct to go through the running projector")

// rebuildFlags are rebuild's flags.
type rebuildFlags struct {
	opsURL, dataDir string
	direct, asJSON  bool
}

// newRebuildCmd is `switchyard rebuild`.
func newRebuildCmd(c *cliIO) *cobra.Command {
	var f rebuildFlags
	var moved string
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "rebuild the customer view from the streams",
		Long:  rebuildLong,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rebuildCmd(cmd.Context(), f, c.getenv, c.stdout)
		},
	}
	fs := cmd.Flags()
	opsFlag(fs, &f.opsURL, c.getenv)
	dataDirFlag(fs, &f.dataDir, "the dev hub's data folder (for its ops token)", true)
	fs.BoolVar(&f.direct, "direct", false, "moved: see 'projector rebuild --direct'")
	fs.StringVar(&moved, "nats", "", "moved with --direct")
	_ = fs.MarkHidden("nats")
	jsonFlag(fs, &f.asJSON)
	return cmd
}

func rebuildCmd(ctx context.Context, f rebuildFlags, getenv func(string) string, stdout io.Writer) error {
	if f.direct {
		return withCode(codeInvalid, errRebuildDirect)
	}
	tok, err := opsToken(getenv, f.dataDir)
	if err != nil {
		return err
	}
	rep, err := client.New(f.opsURL, tok, 0).Rebuild(ctx)
	if err != nil {
		return err
	}
	if f.asJSON {
		return writeJSON(stdout, rep)
	}
	_, err = fmt.Fprintf(stdout, "rebuilt the projection: %d events (%d duplicates, %d skipped, %d applied during the swap), %d customers, in %.2fs = %.0f events/s\n",
		rep.Events, rep.Duplicates, rep.Skipped, rep.CaughtUp, rep.Customers, rep.Seconds, rep.EventsPerSecond)
	return err
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
		return "", withCode(codeUnauthorized, fmt.Errorf("no ops token: set SWITCHYARD_OPS_TOKEN (or run 'switchyard dev', which saves one in %s)", path))
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
