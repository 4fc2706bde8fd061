package opsauth_test

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/opsauth"
)

const (
	founderTok = "founder-0123456789abcdefghij"
	appTok     = "app-0123456789abcdefghijklmn"
)

func TestParseAndLookup(t *testing.T) {
	ts, err := opsauth.Parse("founder:read+operate:" + founderTok + ",\napp:read:" + appTok + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if ts.Len() != 2 {
		t.Fatalf("Len = %d, want 2", ts.Len())
	}
	tests := []struct {
		name, token string
		ok, operate bool
		who         string
	}{
		{"operator", founderTok, true, true, "founder"},
		{"reader", appTok, true, false, "app"},
		{"wrong", founderTok + "x", false, false, ""},
		{"prefix", founderTok[:10], false, false, ""},
		{"empty", "", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := ts.Lookup(tt.token)
			if ok != tt.ok || p.Operate != tt.operate || p.Name != tt.who {
				t.Fatalf("Lookup = %+v, %v; want %s operate=%v ok=%v", p, ok, tt.who, tt.operate, tt.ok)
			}
			if ok && !p.Can(opsauth.ScopeRead) {
				t.Fatal("every principal can read")
			}
			if ok && p.Can(opsauth.ScopeOperate) != tt.operate {
				t.Fatal("operate scope wrong")
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"shape", "founder:" + founderTok, "name:scopes:token"},
		{"scope", "founder:admin:" + founderTok, "unknown scope"},
		{"short", "founder:read:short", "shorter than"},
		{"dup name", "a:read:" + founderTok + ",a:read:" + appTok, "duplicate name"},
		{"dup token", "a:read:" + founderTok + ",b:operate:" + founderTok, "already used"},
		{"swapped fields", "founder:" + founderTok + ":read", "unknown scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := opsauth.Parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), founderTok) || strings.Contains(err.Error(), "short\"") {
				t.Fatalf("error reveals a token: %v", err)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	if tok, ok := opsauth.Bearer("Bearer " + appTok); !ok || tok != appTok {
		t.Fatalf("Bearer = %q %v", tok, ok)
	}
	if tok, ok := opsauth.Bearer("bearer  " + appTok); !ok || tok != appTok {
		t.Fatalf("case-insensitive scheme: %q %v", tok, ok)
	}
	for _, h := range []string{"", "Basic abc", "Bearer ", appTok} {
		if _, ok := opsauth.Bearer(h); ok {
			t.Fatalf("Bearer(%q) accepted", h)
		}
	}
}
