package opsauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// Sessions are signed cookies for the ops console: after a login with an
// ops token, the browser holds the principal's name, scope, expiry and a
// random session id, signed with a key derived from every configured
// token. Nothing is stored server-side, so replicas agree; changing the
// token list (revoking one) ends every session, and each request checks
// that the principal still exists with that scope.

// Session is a logged-in principal.
type Session struct {
	Name    string `json:"n"`
	Operate bool   `json:"o"`
	Expires int64  `json:"e"` // unix seconds
	ID      string `json:"s"`
}

// sessionKey derives the signing key from the token digests (sorted, so
// their order in the configuration does not matter).
func (ts Tokens) sessionKey() []byte {
	ds := make([]string, 0, len(ts.list))
	for _, t := range ts.list {
		ds = append(ds, hex.EncodeToString(t.digest[:])+":"+t.p.Name)
	}
	slices.Sort(ds)
	m := hmac.New(sha256.New, []byte("switchyard-ops-session-v1"))
	m.Write([]byte(strings.Join(ds, ",")))
	return m.Sum(nil)
}

// ThrottleKey keys the failed-authentication throttle's token fingerprints
// (Throttle.Shared): derived from every configured token like the session
// key, so replicas agree and nobody without the tokens can test a guess
// against a stored fingerprint.
func (ts Tokens) ThrottleKey() []byte {
	m := hmac.New(sha256.New, []byte("switchyard-ops-throttle-v1"))
	m.Write(ts.sessionKey())
	return m.Sum(nil)
}

// NewSession starts a session for p lasting ttl.
func (ts Tokens) NewSession(p Principal, ttl time.Duration, now time.Time) (Session, string) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	s := Session{Name: p.Name, Operate: p.Operate, Expires: now.Add(ttl).Unix(), ID: hex.EncodeToString(b)}
	payload, _ := json.Marshal(s)
	enc := base64.RawURLEncoding.EncodeToString(payload)
	return s, enc + "." + base64.RawURLEncoding.EncodeToString(ts.sign("session|"+enc))
}

func (ts Tokens) sign(s string) []byte {
	m := hmac.New(sha256.New, ts.sessionKey())
	m.Write([]byte(s))
	return m.Sum(nil)
}

// Session errors.
var (
	ErrNoSession      = errors.New("not logged in")
	ErrSessionExpired = errors.New("session expired")
)

// VerifySession checks a cookie value and returns the session's principal
// as the token list has it now.
func (ts Tokens) VerifySession(cookie string, now time.Time) (Session, Principal, error) {
	enc, sig, ok := strings.Cut(cookie, ".")
	if !ok || len(ts.list) == 0 {
		return Session{}, Principal{}, ErrNoSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, ts.sign("session|"+enc)) {
		return Session{}, Principal{}, ErrNoSession
	}
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return Session{}, Principal{}, ErrNoSession
	}
	var s Session
	if err := json.Unmarshal(payload, &s); err != nil || s.ID == "" {
		return Session{}, Principal{}, ErrNoSession
	}
	if now.Unix() >= s.Expires {
		return Session{}, Principal{}, ErrSessionExpired
	}
	for _, t := range ts.list {
		if t.p.Name == s.Name {
			// The scope is today's, not the one at login.
			return s, t.p, nil
		}
	}
	return Session{}, Principal{}, ErrNoSession
}

// CSRFToken is the anti-forgery token of a session, embedded in every
// form and checked on every state-changing request.
func (ts Tokens) CSRFToken(s Session) string {
	return base64.RawURLEncoding.EncodeToString(ts.sign("csrf|" + s.ID))
}

// CheckCSRF reports whether token is the session's CSRF token.
func (ts Tokens) CheckCSRF(s Session, token string) bool {
	got, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && token != "" && hmac.Equal(got, ts.sign("csrf|"+s.ID))
}
