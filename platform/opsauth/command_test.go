package opsauth_test

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/switchyard/switchyard/platform/opsauth"
)

func TestCommandSignature(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	old, _, _ := ed25519.GenerateKey(nil)
	data := []byte(`{"request_id":"r1","guest_id":"cus_a","customer_id":"cus_b"}`)
	sig := opsauth.SignCommand(key, "ops.identity.link", data)
	if err := opsauth.VerifyCommand([]ed25519.PublicKey{old, pub}, "ops.identity.link", data, sig); err != nil {
		t.Fatalf("a rotation's second key: %v", err)
	}
	for name, c := range map[string]struct {
		keys    []ed25519.PublicKey
		subject string
		data    []byte
		sig     string
	}{
		"unsigned":      {[]ed25519.PublicKey{pub}, "ops.identity.link", data, ""},
		"other key":     {[]ed25519.PublicKey{old}, "ops.identity.link", data, sig},
		"other subject": {[]ed25519.PublicKey{pub}, "ops.identity.unlink", data, sig},
		"other data":    {[]ed25519.PublicKey{pub}, "ops.identity.link", append([]byte{' '}, data...), sig},
		"garbage":       {[]ed25519.PublicKey{pub}, "ops.identity.link", data, "!!"},
	} {
		if err := opsauth.VerifyCommand(c.keys, c.subject, c.data, c.sig); !errors.Is(err, opsauth.ErrCommandUnverified) {
			t.Errorf("%s: %v, want ErrCommandUnverified", name, err)
		}
	}
}
