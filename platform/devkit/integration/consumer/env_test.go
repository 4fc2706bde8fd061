package consumer_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
)

func TestRetryFromEnv(t *testing.T) {
	r := config.NewReader(config.MapEnv(map[string]string{"CONSUMER_MAX_ATTEMPTS": "12", "CONSUMER_BACKOFF": "50ms, 1s"}))
	n, b := consumer.RetryFromEnv(r)
	if n != 12 || len(b) != 2 || b[0] != 50*time.Millisecond || b[1] != time.Second || r.Err() != nil {
		t.Fatalf("got %d %v %v", n, b, r.Err())
	}
	r = config.NewReader(config.MapEnv(nil))
	if n, b := consumer.RetryFromEnv(r); n != 0 || b != nil {
		t.Fatalf("defaults: %d %v, want zero values (Config's defaults apply)", n, b)
	}
	r = config.NewReader(config.MapEnv(map[string]string{"CONSUMER_BACKOFF": "soon", "CONSUMER_MAX_ATTEMPTS": "0"}))
	consumer.RetryFromEnv(r)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "CONSUMER_BACKOFF") || !strings.Contains(err.Error(), "CONSUMER_MAX_ATTEMPTS") {
		t.Fatalf("bad values: %v", err)
	}
}

func TestReplayKeysFromEnv(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := config.NewReader(config.MapEnv(map[string]string{
		"SWITCHYARD_REPLAY_KEYS":        hex.EncodeToString(pub) + ", " + hex.EncodeToString(pub),
		"SWITCHYARD_REPLAY_SIGNING_KEY": hex.EncodeToString(priv.Seed()),
	}))
	keys, sign := consumer.ReplayKeysFromEnv(r), consumer.ReplaySigningKeyFromEnv(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].Equal(pub) || !sign.Equal(priv) {
		t.Errorf("keys %x, signing key matches %t", keys, sign.Equal(priv))
	}
	r = config.NewReader(config.MapEnv(map[string]string{"SWITCHYARD_REPLAY_KEYS": "nothex", "SWITCHYARD_REPLAY_SIGNING_KEY": "short"}))
	consumer.ReplayKeysFromEnv(r)
	consumer.ReplaySigningKeyFromEnv(r)
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), "SWITCHYARD_REPLAY_KEYS") || !strings.Contains(err.Error(), "SWITCHYARD_REPLAY_SIGNING_KEY") || strings.Contains(err.Error(), "short") {
		t.Errorf("bad keys: %v", err)
	}
	r = config.NewReader(config.MapEnv(nil))
	if consumer.ReplayKeysFromEnv(r) != nil || consumer.ReplaySigningKeyFromEnv(r) != nil || r.Err() != nil {
		t.Error("unset keys are not none")
	}
}

// Outside development the replay keys are required: without them any
// process that can publish to NATS could claim a replay.
func TestReplayKeysRequiredOutsideDevelopment(t *testing.T) {
	t.Parallel()
	for env, wantErr := range map[string]bool{"production": true, "staging": true, "development": false, "": false} {
		r := config.NewReader(config.MapEnv(map[string]string{"SWITCHYARD_ENV": env}))
		consumer.ReplayKeysFromEnv(r)
		if err := r.Err(); (err != nil) != wantErr || wantErr && !strings.Contains(err.Error(), "switchyard replay-key") {
			t.Errorf("SWITCHYARD_ENV=%q without keys: %v; want an error naming switchyard replay-key: %t", env, err, wantErr)
		}
	}
}
