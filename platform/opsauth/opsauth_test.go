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

func TestTokenBits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		token  string
		strong bool // at least MinTokenBits
	}{
		{"32 hex characters (openssl rand -hex 16)", "3f9a0c7d52e1b84f6a0d9c3e7b215f48", true},
		{"31 hex characters", "3f9a0c7d52e1b84f6a0d9c3e7b215f4", false},
		{"32 upper-case hex characters", "3F9A0C7D52E1B84F6A0D9C3E7B215F48", true},
		{"48 hex characters (switchyard dev)", "3f9a0c7d52e1b84f6a0d9c3e7b215f483f9a0c7d52e1b84f", true},
		{"22 base64url characters", "q8ZrX0-v_3LmT9aKcW2nYb", true},
		{"21 base64url characters", "q8ZrX0-v_3LmT9aKcW2nY", false},
		{"openssl rand -base64 16, padded", "Tq0dD1lA9wV6fPj2Xc+4/g==", true},
		{"24 hex characters pass the length rule but not this one", "3f9a0c7d52e1b84f6a0d9c3e", false},
		{"39 digits", "830194756201938475610293847561029384756", true},
		{"38 digits", "83019475620193847561029384756102938475", false},
		{"20 printable characters", "k#8!Qz@4%vR^2&bT*9(x", true},
		{"long but one character", strings.Repeat("a", 64), false},
		{"long but a short pattern", strings.Repeat("abcdef", 10), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := opsauth.TokenBits(tt.token) >= opsauth.MinTokenBits; got != tt.strong {
				t.Errorf("TokenBits(%q) = %.1f: strong = %v, want %v", tt.token, opsauth.TokenBits(tt.token), got, tt.strong)
			}
		})
	}
}

// TestRequireStrong names each weak token by its name, never its value.
func TestRequireStrong(t *testing.T) {
	t.Parallel()
	const weak = "0123456789abcdef01234567" // 24 hex characters: 96 bits
	ts, err := opsauth.Parse("founder:read+operate:3f9a0c7d52e1b84f6a0d9c3e7b215f48,app:read:" + weak + ",bot:read:" + appTok)
	if err != nil {
		t.Fatal(err)
	}
	err = ts.RequireStrong()
	if err == nil {
		t.Fatal("RequireStrong accepted a 96-bit token")
	}
	if !strings.Contains(err.Error(), `"app"`) || !strings.Contains(err.Error(), "under 128") {
		t.Errorf("error %q does not name the weak token", err)
	}
	if strings.Contains(err.Error(), "founder") || strings.Contains(err.Error(), "bot") {
		t.Errorf("error %q names a strong token", err)
	}
	if strings.Contains(err.Error(), weak) || strings.Contains(err.Error(), weak[:12]) {
		t.Errorf("error %q reveals the token", err)
	}
	strong, err := opsauth.Parse("founder:read+operate:3f9a0c7d52e1b84f6a0d9c3e7b215f48")
	if err != nil {
		t.Fatal(err)
	}
	if err := strong.RequireStrong(); err != nil {
		t.Errorf("RequireStrong on a 128-bit token: %v", err)
	}
}
