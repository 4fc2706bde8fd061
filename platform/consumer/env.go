package consumer

import (
	"crypto/ed25519"
	"time"

	"github.com/switchyard/switchyard/platform/config"
)

// RetryFromEnv reads the retry policy every consuming service shares:
//
//	CONSUMER_MAX_ATTEMPTS  deliveries before a retryable failure is dead-lettered (default 6)
//	CONSUMER_BACKOFF       delays after failed attempts 1, 2, …, comma-separated; the last
//	                       repeats (default 1s,5s,30s,2m,10m); each is randomized ±25 %
//	                       (DefaultJitter) and never shorter than a Retry-After
//
// Zero values mean the defaults of Config.
func RetryFromEnv(r *config.Reader) (maxAttempts int, backoff []time.Duration) {
	maxAttempts = r.Int("CONSUMER_MAX_ATTEMPTS", 0, 1, 100)
	for _, item := range r.List("CONSUMER_BACKOFF") {
		d, err := time.ParseDuration(item)
		if err != nil || d <= 0 {
			r.Fail("CONSUMER_BACKOFF", "%q is not a positive duration", item)
			continue
		}
		backoff = append(backoff, d)
	}
	return maxAttempts, backoff
}

// ReplayKeysFromEnv reads the operator's replay public keys every
// consuming service checks replays against (Config.ReplayKeys):
//
//	SWITCHYARD_REPLAY_KEYS  Ed25519 public keys, 64 hex digits each, comma-separated
//	                        (two during a rotation); required outside development
//	                        (SWITCHYARD_ENV); unset in development: replay headers are trusted
func ReplayKeysFromEnv(r *config.Reader) []ed25519.PublicKey {
	var keys []ed25519.PublicKey
	items := r.List("SWITCHYARD_REPLAY_KEYS")
	for _, item := range items {
		k, err := ParseReplayKey(item)
		if err != nil {
			r.Fail("SWITCHYARD_REPLAY_KEYS", "%v", err)
			continue
		}
		keys = append(keys, k)
	}
	if len(items) == 0 && r.String("SWITCHYARD_ENV", "development") != "development" {
		r.Fail("SWITCHYARD_REPLAY_KEYS", "required outside development: without it any process that can publish to NATS can claim a replay "+
			"and have effects redone; make a pair with `switchyard replay-key`")
	}
	return keys
}

// ReplaySigningKeyFromEnv reads the operator's replay signing key, for
// whatever replays dead letters (the projector's status API and console,
// `switchyard dlq replay --direct`):
//
//	SWITCHYARD_REPLAY_SIGNING_KEY  an Ed25519 seed, 64 hex digits (a secret:
//	                               SWITCHYARD_REPLAY_SIGNING_KEY_FILE); unset: unsigned replays
func ReplaySigningKeyFromEnv(r *config.Reader) ed25519.PrivateKey {
	s := r.Secret("SWITCHYARD_REPLAY_SIGNING_KEY")
	if !s.IsSet() {
		return nil
	}
	k, err := ParseReplaySeed(s.Reveal())
	if err != nil {
		r.Fail("SWITCHYARD_REPLAY_SIGNING_KEY", "%v", err)
		return nil
	}
	return k
}
