package emailaddr_test

import (
	"testing"

	"github.com/switchyard/switchyard/platform/emailaddr"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"already normal", "ada@example.com", "ada@example.com"},
		{"upper case", "Ada.Lovelace@Example.COM", "ada.lovelace@example.com"},
		{"surrounding white space", " \t ada@example.com\r\n", "ada@example.com"},
		{"non-ASCII local part", "ÉLODIE@example.fr", "élodie@example.fr"},
		{"inner space kept", "ada lovelace@example.com", "ada lovelace@example.com"},
		{"empty", "", ""},
		{"only spaces", "   ", ""},
	}
	for _, tt := range tests {
		if got := emailaddr.Normalize(tt.in); got != tt.want {
			t.Errorf("%s: Normalize(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		wantOK         bool
	}{
		{"valid, normalised", " Ada@Example.com ", "ada@example.com", true},
		{"empty", "", "", false},
		{"no at sign", "ada.example.com", "ada.example.com", false},
		{"inner space", "ada lovelace@example.com", "ada lovelace@example.com", false},
		{"display name", "Ada <ada@example.com>", "ada <ada@example.com>", false},
		{"dotless domain", "ada@localhost", "ada@localhost", false},
		{"zero-width space", "ada\u200b@example.com", "ada\u200b@example.com", false},
		{"invalid UTF-8 becomes U+FFFD and is refused", "ad\xffa@example.com", "ad\ufffda@example.com", false},
	}
	for _, tt := range tests {
		got, ok := emailaddr.Key(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: Key(%q) = %q, %v; want %q, %v", tt.name, tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}
