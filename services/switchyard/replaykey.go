package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
)

const replayKeyUsage = `Usage: switchyard replay-key [--public]

Makes the operator's replay key pair, printed as the two variables to set:
SWITCHYARD_REPLAY_SIGNING_KEY (a secret: only for the projector and the
operator's CLI, which sign the replays they make) and SWITCHYARD_REPLAY_KEYS
(for every consuming service, which handles a replay as one only when it is
signed). With --public, prints the public key of the signing key already in
SWITCHYARD_REPLAY_SIGNING_KEY[_FILE] instead (rotation: list the old and the
new, comma-separated, until no old replay is in flight).
`

func replayKeyCmd(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayKeyUsage) }
	public := fs.Bool("public", false, "print the public key of SWITCHYARD_REPLAY_SIGNING_KEY[_FILE]")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil || fs.NArg() != 0 {
		return errUsage
	}
	if *public {
		r := config.NewReader(getenv)
		key := consumer.ReplaySigningKeyFromEnv(r)
		if err := r.Err(); err != nil {
			return err
		}
		if key == nil {
			return errors.New("--public: set SWITCHYARD_REPLAY_SIGNING_KEY or SWITCHYARD_REPLAY_SIGNING_KEY_FILE")
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
