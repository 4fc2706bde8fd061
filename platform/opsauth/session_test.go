package opsauth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/opsauth"
)

func TestSessionRoundTripAndTampering(t *testing.T) {
	ts, err := opsauth.Parse("founder:read+operate:" + founderTok + ",app:read:" + appTok)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p, _ := ts.Lookup(founderTok)
	s, cookie := ts.NewSession(p, time.Hour, now)
	got, gp, err := ts.VerifySession(cookie, now.Add(time.Minute))
	if err != nil || got.ID != s.ID || gp.Name != "founder" || !gp.Operate {
		t.Fatalf("VerifySession = %+v %+v %v", got, gp, err)
	}
	if strings.Contains(cookie, founderTok) {
		t.Fatal("the cookie carries the token")
	}
	if _, _, err := ts.VerifySession(cookie, now.Add(2*time.Hour)); !errors.Is(err, opsauth.ErrSessionExpired) {
		t.Fatalf("expired session: %v", err)
	}
	// Flip one character of the payload or the signature.
	for _, i := range []int{3, len(cookie) - 3} {
		b := []byte(cookie)
		b[i] ^= 1
		if _, _, err := ts.VerifySession(string(b), now); err == nil {
			t.Fatalf("tampered cookie (byte %d) accepted", i)
		}
	}
	// A read-only principal cannot forge an operate session.
	rp, _ := ts.Lookup(appTok)
	rs, rcookie := ts.NewSession(rp, time.Hour, now)
	if _, gp, _ := ts.VerifySession(rcookie, now); gp.Operate {
		t.Fatal("read session verified as operate")
	}
	// Another token list (a token revoked) ends every session.
	other, _ := opsauth.Parse("founder:read+operate:" + founderTok)
	if _, _, err := other.VerifySession(rcookie, now); err == nil {
		t.Fatal("session survived a change of the token list")
	}
	// CSRF tokens belong to their session.
	if !ts.CheckCSRF(s, ts.CSRFToken(s)) || ts.CheckCSRF(s, ts.CSRFToken(rs)) || ts.CheckCSRF(s, "") {
		t.Fatal("CSRF tokens are not bound to their session")
	}
}
