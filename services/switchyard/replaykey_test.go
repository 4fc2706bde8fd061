package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
)

// TestReplayKey: the printed pair belongs together (a replay signed with
// the signing key verifies with the public one), and --public derives the
// same public key from the signing key in the environment.
func TestReplayKey(t *testing.T) {
	var out strings.Builder
	if code := run(context.Background(), []string{"replay-key"}, func(string) string { return "" }, nil, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	r := config.NewReader(config.MapEnv(vars))
	key, pubs := consumer.ReplaySigningKeyFromEnv(r), consumer.ReplayKeysFromEnv(r)
	if err := r.Err(); err != nil || key == nil || len(pubs) != 1 || !pubs[0].Equal(key.Public().(ed25519.PublicKey)) {
		t.Fatalf("printed %q: not a matching pair (%v)", out.String(), err)
	}
	var pubOut strings.Builder
	env := config.MapEnv(map[string]string{"SWITCHYARD_REPLAY_SIGNING_KEY": vars["SWITCHYARD_REPLAY_SIGNING_KEY"]})
	if code := run(context.Background(), []string{"replay-key", "--public"}, env, nil, &pubOut, io.Discard); code != 0 ||
		strings.TrimSpace(pubOut.String()) != "SWITCHYARD_REPLAY_KEYS="+vars["SWITCHYARD_REPLAY_KEYS"] {
		t.Errorf("--public: exit %d, %q", code, pubOut.String())
	}
	if code := run(context.Background(), []string{"replay-key", "--public"}, func(string) string { return "" }, nil, io.Discard, io.Discard); code != 1 {
		t.Errorf("--public without a key: exit %d, want 1", code)
	}
}
