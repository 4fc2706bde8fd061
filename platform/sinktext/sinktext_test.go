package sinktext_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/platform/sinktext"
	"github.com/switchyard/switchyard/platform/testkit"
)

func TestCleanLeavesNoHiddenCharacters(t *testing.T) {
	for _, h := range testkit.HostileCorpus() {
		t.Run(h.Name, func(t *testing.T) {
			got := sinktext.Clean(h.Value)
			if !utf8.ValidString(got) {
				t.Fatalf("Clean(%q) is not valid UTF-8", h.Value)
			}
			for _, r := range got {
				if r != '\n' && r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
					t.Fatalf("Clean(%q) keeps %U", h.Value, r)
				}
			}
			if line := sinktext.Line(h.Value); strings.ContainsAny(line, "\n\t") || line != strings.TrimSpace(line) {
				t.Errorf("Line(%q) = %q: not one trimmed line", h.Value, line)
			}
		})
	}
	for _, c := range []struct{ in, want string }{
		{"Ada\x00Lovelace", "AdaLovelace"},
		{"a\r\nb\rc\u2028d", "a\nb\nc\nd"},
		{"invoice \u202Etxt.exe\u202C", "invoice txt.exe"},
		{"\xffok", "\ufffdok"},
		{"plain, unchanged: Zoë ✓", "plain, unchanged: Zoë ✓"},
	} {
		if got := sinktext.Clean(c.in); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    string
		limit int
		unit  sinktext.Unit
		want  string
		cut   bool
	}{
		{"fits", "hello", 5, sinktext.Runes, "hello", false},
		{"runes", "hello world", 8, sinktext.Runes, "hello w…", true},
		{"trailing space dropped", "hello world", 7, sinktext.Runes, "hello…", true},
		{"bytes never split a rune", "ééééé", 6, sinktext.Bytes, "é…", true},
		{"utf16 counts emoji twice", "😀😀😀", 5, sinktext.UTF16, "😀😀…", true},
		{"too small for the ellipsis", "hello", 0, sinktext.Runes, "", true},
	} {
		got, cut := sinktext.Truncate(c.in, c.limit, c.unit)
		if got != c.want || cut != c.cut {
			t.Errorf("%s: Truncate(%q, %d) = %q, %v; want %q, %v", c.name, c.in, c.limit, got, cut, c.want, c.cut)
		}
		if sinktext.Len(got, c.unit) > c.limit {
			t.Errorf("%s: %q is longer than %d", c.name, got, c.limit)
		}
	}
}

func TestValidEmail(t *testing.T) {
	for _, e := range []string{"ada@example.com", "ada.lovelace+billing@mail.example.co.uk", "a@xn--bcher-kva.example.com", "O'Brien@example.org"} {
		if !sinktext.ValidEmail(e) {
			t.Errorf("ValidEmail(%q) = false, want true", e)
		}
	}
	for _, e := range []string{
		"", "ada lovelace@example.com", " ada@example.com", "ada@example.com ", "ada", "ada@", "@example.com",
		"ada@localhost", "ada@example", "ada@exa mple.com", `"ada"@example.com`, "Ada <ada@example.com>",
		"ada@example.c0m", "ada@-example.com", "ada@example..com", "ada@[127.0.0.1]", "<@U024BE7LH>@evil.example",
		strings.Repeat("a", 65) + "@example.com", "a@" + strings.Repeat("b", 250) + ".com", "ada\x00@example.com",
	} {
		if sinktext.ValidEmail(e) {
			t.Errorf("ValidEmail(%q) = true, want false", e)
		}
	}
}
