package opsauth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrCommandUnverified: an operator command carries no signature any of
// the operator's keys made.
var ErrCommandUnverified = errors.New("operator command not signed by an operator key")

// commandInput is what a command signature covers: the subject and the
// SHA-256 of the data (which names the command's own id), so a signature
// moves to no other command or subject.
func commandInput(subject string, data []byte) []byte {
	sum := sha256.Sum256(data)
	return []byte(strings.Join([]string{"switchyard-command-v1", subject, hex.EncodeToString(sum[:])}, "\n"))
}

// SignCommand signs an operator command (the value for
// wire.HeaderOperatorSig) with the operator's key — the replay signing
// key, SWITCHYARD_REPLAY_SIGNING_KEY.
func SignCommand(key ed25519.PrivateKey, subject string, data []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, commandInput(subject, data)))
}

// VerifyCommand checks sig against keys (any one may have signed: a
// rotation lists the old and the new).
func VerifyCommand(keys []ed25519.PublicKey, subject string, data []byte, sig string) error {
	if sig == "" {
		return fmt.Errorf("%w: no signature", ErrCommandUnverified)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: malformed signature", ErrCommandUnverified)
	}
	in := commandInput(subject, data)
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, in, raw) {
			return nil
		}
	}
	return fmt.Errorf("%w: no key verifies it", ErrCommandUnverified)
}
