package consumer

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/proto/wire"
)

// HeaderReplaySig is the operator's Ed25519 signature of a replay
// (base64, standard encoding), over what replayInput lists. Only a replay
// that carries a valid one is handled as a replay when the consumer has
// ReplayKeys: a replay header is a claim ("handle me as message X, for
// consumer Y only") that anyone allowed to publish the subject could
// otherwise make.
const HeaderReplaySig = "Switchyard-Replay-Sig"

// ErrReplayUnverified means a message's replay headers are not signed by
// any of the consumer's replay keys (missing, malformed or forged).
var ErrReplayUnverified = errors.New("replay headers not signed by an operator replay key")

// replayInput is what a replay signature covers: the subject, the
// replay's own message id, the id it is handled as, the consumer it is
// for and the SHA-256 of the data — so a signature can be moved to no
// other message, subject, consumer or content.
func replayInput(subject string, h nats.Header, data []byte) []byte {
	sum := sha256.Sum256(data)
	return []byte(strings.Join([]string{"switchyard-replay-v1", subject, h.Get(wire.HeaderMsgID),
		h.Get(HeaderReplayOf), h.Get(HeaderReplayFor), hex.EncodeToString(sum[:])}, "\n"))
}

// SignReplay signs msg's replay headers (set them, and its Nats-Msg-Id,
// first) with key, replacing any earlier signature.
func SignReplay(key ed25519.PrivateKey, msg *nats.Msg) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	sig := ed25519.Sign(key, replayInput(msg.Subject, msg.Header, msg.Data))
	msg.Header.Set(HeaderReplaySig, base64.StdEncoding.EncodeToString(sig))
}

// VerifyReplay checks the replay signature of a message against keys
// (any one may have signed: a rotation lists the old and the new); it
// returns ErrReplayUnverified, wrapped with why, when none did.
func VerifyReplay(keys []ed25519.PublicKey, subject string, h nats.Header, data []byte) error {
	raw := h.Get(HeaderReplaySig)
	if raw == "" {
		return fmt.Errorf("%w: no %s header", ErrReplayUnverified, HeaderReplaySig)
	}
	sig, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: malformed signature", ErrReplayUnverified)
	}
	in := replayInput(subject, h, data)
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, in, sig) {
			return nil
		}
	}
	return fmt.Errorf("%w: no key verifies it", ErrReplayUnverified)
}

// ParseReplayKey reads a replay public key: 64 hex digits.
func ParseReplayKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("a replay key is 64 hex digits (an Ed25519 public key)")
	}
	return ed25519.PublicKey(b), nil
}

// ParseReplaySeed reads the operator's replay signing key: the 64 hex
// digits of an Ed25519 seed.
func ParseReplaySeed(s string) (ed25519.PrivateKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, errors.New("a replay signing key is 64 hex digits (an Ed25519 seed)")
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// verifyReplay applies the consumer's replay policy to m: without
// ReplayKeys, replay headers are trusted (the NATS permissions are the
// only guard); with them, a message whose replay headers are not signed
// by one of the keys loses them — it is handled as the ordinary message
// its publisher could have sent anyway, by every consumer, under its own
// id — and the refusal is counted and logged.
func (c *Consumer) verifyReplay(m *Message) (refused error) {
	if len(c.cfg.ReplayKeys) == 0 || (m.Header.Get(HeaderReplayOf) == "" && m.Header.Get(HeaderReplayFor) == "") {
		return nil
	}
	err := VerifyReplay(c.cfg.ReplayKeys, m.Subject, m.Header, m.Data)
	if err != nil {
		m.Header.Del(HeaderReplayOf)
		m.Header.Del(HeaderReplayFor)
		m.Header.Del(HeaderReplaySig)
	}
	return err
}
