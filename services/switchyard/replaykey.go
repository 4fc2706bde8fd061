package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
)

const replayKeyLong = `Makes the operator's replay key pair, printed as the two variables to set:
SWITCHYARD_REPLAY_SIGNING_KEY (a secret: only for the projector and the
operator's CLI, which sign the replays they make) and SWITCHYARD_REPLAY_KEYS
(for every consuming service, which handles a replay as one only when it is
signed). With --public, prints the public key of the signing key already in
SWITCHYARD_REPLAY_SIGNING_KEY[_FILE] instead (rotation: list the old and the
new, comma-separated, until no old replay is in flight).
`

// newReplayKeyCmd is `switchyard replay-key`.
func newReplayKeyCmd(c *cliIO) *cobra.Command {
	var public bool
	cmd := &cobra.Command{
		Use:   "replay-key",
		Short: "make the operator's replay key pair (signed replays)",
		Long:  replayKeyLong,
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			return replayKeyCmd(c.getenv, c.stdout, public)
		},
	}
	cmd.Flags().BoolVar(&public, "public", false, "print the public key of SWITCHYARD_REPLAY_SIGNING_KEY[_FILE]")
	return cmd
}

func replayKeyCmd(getenv func(string) string, stdout io.Writer, public bool) error {
	if public {
		r := config.NewReader(getenv)
		key := consumer.ReplaySigningKeyFromEnv(r)
		if err := r.Err(); err != nil {
			return withCode(codeInvalid, err)
		}
		if key == nil {
			return withCode(codeInvalid, errors.New("--public: set SWITCHYARD_REPLAY_SIGNING_KEY or SWITCHYARD_REPLAY_SIGNING_KEY_FILE"))
		}
		_, err := fmt.Fprintf(stdout, "SWITCHYARD_REPLAY_KEYS=%s\n", hex.EncodeToString(key.Public().(ed25519.PublicKey)))
		return err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "SWITCHYARD_REPLAY_SIGNING_KEY=%s\nSWITCHYARD_REPLAY_KEYS=%s\n", hex.EncodeToString(key.Seed()), hex.EncodeToString(pub))
	return err
}
