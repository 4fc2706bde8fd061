// Package opsauth checks the bearer tokens of the hub's operations
// surface (status API, ops console, CLI).
//
// Tokens come from SWITCHYARD_OPS_TOKENS (or _FILE): entries separated by
// commas or newlines, each "name:scopes:token" where scopes is read,
// operate, or read+operate ("operate" alone implies read). The name is who
// acted in audit records; the token is compared in constant time and never
// logged.
package opsauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"
)

// Scopes.
const (
	ScopeRead    = "read"
	ScopeOperate = "operate"
)

// MinTokenLength keeps guessable tokens out of configuration.
const MinTokenLength = 24

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
		ts.list = append(ts.list, token{digest: sha256.Sum256([]byte(secret)), p: p})
	}
	return ts, nil
}

func digest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

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
