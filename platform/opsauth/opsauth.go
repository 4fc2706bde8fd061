// Package opsauth checks the bearer tokens of the hub's operations
// surface (status API, ops console, CLI).
//
// Tokens come from SWITCHYARD_OPS_TOKENS (or _FILE): entries separated by
// commas or newlines, each "name:scopes:token" where scopes is read,
// operate, or read+operate ("operate" alone implies read). The name is who
// acted in audit records; the token is compared in constant time and never
// logged. Outside development every token must carry at least
// MinTokenBits of entropy (see TokenBits and Tokens.RequireStrong).
package opsauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
)

// Scopes.
const (
	ScopeRead    = "read"
	ScopeOperate = "operate"
)

// MinTokenLength keeps guessable tokens out of configuration, even in
// development.
const MinTokenLength = 24

// MinTokenBits is the entropy every ops token needs outside development: at
// least 32 hex characters, 22 base64url characters or 39 digits of a
// random source, e.g. `openssl rand -hex 16` (or -hex 32 for room).
const MinTokenBits = 128

// minDistinct is the fewest distinct characters a token may have before
// TokenBits counts it as patterned: a random 32-character hex string has
// about 14, and fewer than 8 happens less than once in 25 million.
const minDistinct = 8

// TokenBits estimates the entropy of tok, in bits, assuming its characters
// were drawn at random: its length times the bits per character of the
// smallest of these alphabets that holds every one of them —
//
//	decimal digits                      log2(10) ≈ 3.32
//	hexadecimal, one letter case        4
//	base64 or base64url (A–Z a–z 0–9 + / = - _)   6
//	anything else                       log2(95) ≈ 6.57 (printable ASCII)
//
// A token of fewer than 8 distinct characters ("aaaa…", "abab…") counts as
// 0. It is an upper bound: "password-password-password" scores well and is
// not random; generate tokens, never type them.
func TokenBits(tok string) float64 {
	if tok == "" {
		return 0
	}
	seen := map[rune]bool{}
	digits, lowerHex, upperHex, b64 := true, true, true, true
	for _, c := range tok {
		seen[c] = true
		isDigit := c >= '0' && c <= '9'
		digits = digits && isDigit
		lowerHex = lowerHex && (isDigit || c >= 'a' && c <= 'f')
		upperHex = upperHex && (isDigit || c >= 'A' && c <= 'F')
		b64 = b64 && (isDigit || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.ContainsRune("+/=-_", c))
	}
	if len(seen) < minDistinct {
		return 0
	}
	perChar := math.Log2(95)
	switch {
	case digits:
		perChar = math.Log2(10)
	case lowerHex || upperHex:
		perChar = 4
	case b64:
		perChar = 6
	}
	return float64(len([]rune(tok))) * perChar
}

// Principal is who a token belongs to.
type Principal struct {
	Name    string
	Operate bool // may change things (replay, discard, rebuild); every principal may read
}

// Can reports whether p holds scope.
func (p Principal) Can(scope string) bool {
	return scope == ScopeRead || scope == ScopeOperate && p.Operate
}

type token struct {
	digest [sha256.Size]byte
	bits   float64 // TokenBits of the token, kept for RequireStrong
	p      Principal
}

// Tokens is a parsed token list; the zero value accepts nothing.
type Tokens struct{ list []token }

// Parse reads a token list (see the package doc). It never includes a
// token in an error.
func Parse(s string) (Tokens, error) {
	var ts Tokens
	names := map[string]bool{}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, rest, ok1 := strings.Cut(f, ":")
		scopes, secret, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || name == "" {
			return Tokens{}, fmt.Errorf("entry %d: want name:scopes:token", i+1)
		}
		if names[name] {
			return Tokens{}, fmt.Errorf("entry %d (%s): duplicate name", i+1, name)
		}
		names[name] = true
		p := Principal{Name: name}
		for _, sc := range strings.Split(scopes, "+") {
			switch sc {
			case ScopeRead:
			case ScopeOperate:
				p.Operate = true
			default:
				// Never echo the value: a token in the wrong field would be logged.
				return Tokens{}, fmt.Errorf("entry %d (%s): unknown scope (want read, operate or read+operate)", i+1, name)
			}
		}
		if len(secret) < MinTokenLength {
			return Tokens{}, fmt.Errorf("entry %d (%s): token shorter than %d characters", i+1, name, MinTokenLength)
		}
		for _, t := range ts.list {
			if subtle.ConstantTimeCompare(t.digest[:], digest(secret)) == 1 {
				return Tokens{}, fmt.Errorf("entry %d (%s): token already used by %s", i+1, name, t.p.Name)
			}
		}
		ts.list = append(ts.list, token{digest: sha256.Sum256([]byte(secret)), bits: TokenBits(secret), p: p})
	}
	return ts, nil
}

func digest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

// RequireStrong returns an error naming every token (by its name, never
// its value) with less than MinTokenBits of entropy by TokenBits, or nil.
// Services call it at start outside development.
func (ts Tokens) RequireStrong() error {
	var errs []error
	for _, t := range ts.list {
		if t.bits < MinTokenBits {
			errs = append(errs, fmt.Errorf("token %q has about %.0f bits of entropy, under %d: give it at least 32 random hex or 22 random base64url characters (openssl rand -hex 16)",
				t.p.Name, math.Floor(t.bits), MinTokenBits))
		}
	}
	return errors.Join(errs...)
}

// Len is the number of tokens.
func (ts Tokens) Len() int { return len(ts.list) }

// Lookup returns the principal of a presented token. It compares digests
// in constant time against every configured token, so the time taken
// says nothing about how close a guess was or which entry matched.
func (ts Tokens) Lookup(presented string) (Principal, bool) {
	d := digest(presented)
	var found Principal
	ok := 0
	for _, t := range ts.list {
		if subtle.ConstantTimeCompare(t.digest[:], d) == 1 {
			found, ok = t.p, 1
		}
	}
	return found, ok == 1 && presented != ""
}

// Bearer extracts the token from an Authorization header value.
func Bearer(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// LogValue names the principals and their scopes, never the tokens.
func (ts Tokens) LogValue() slog.Value {
	names := make([]string, 0, len(ts.list))
	for _, t := range ts.list {
		s := t.p.Name + ":read"
		if t.p.Operate {
			s += "+operate"
		}
		names = append(names, s)
	}
	return slog.StringValue(strings.Join(names, ","))
}
