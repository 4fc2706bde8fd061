package identity

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		limit    int
		want     string
	}{
		{"plain text is kept", "Jenny Rosen", 256, "Jenny Rosen"},
		{"empty", "", 256, ""},
		{"trimmed, runs of space are one", "  Jenny \t\n Rosen \r\n", 256, "Jenny Rosen"},
		{"NUL is removed", "Jen\x00ny", 256, "Jenny"},
		{"C0, DEL and C1 controls are removed", "J\x07e\x1bn\x7fn\u0080y\u009b", 256, "Jenny"},
		{"NEL and other line breaks are a space", "Jenny\u0085Rosen\u2028of\vAcme\f", 256, "Jenny Rosen of Acme"},
		{"bidi overrides and isolates are removed", "\u202eynneJ\u202c \u2067Rosen\u2069", 256, "ynneJ Rosen"},
		{"every invisible format character is removed", "Je\u200bnny\u200e Ro\u2060sen\ufeff", 256, "Jenny Rosen"},
		{"invalid UTF-8 is one U+FFFD per run", "Ro\xff\xfesen", 256, "Ro\uFFFDsen"},
		{"non-ASCII letters and emoji are kept", "Zoë 山田 👩💻", 256, "Zoë 山田 👩💻"},
		{"an emoji sequence loses its joiner", "👩\u200d💻", 256, "👩💻"},
		{"exactly the limit is kept", strings.Repeat("é", 256), 256, strings.Repeat("é", 256)},
		{"over the limit is cut with an ellipsis", strings.Repeat("é", 257), 256, strings.Repeat("é", 255) + "…"},
		{"the cut drops a trailing space", strings.Repeat("a", 254) + " bcd", 256, strings.Repeat("a", 254) + "…"},
		{"ASCII over the limit", strings.Repeat("x", 20000), 256, strings.Repeat("x", 255) + "…"},
		{"only controls", "\x00\x01\u202e", 256, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := cleanText(tt.in, tt.limit)
			if got != tt.want {
				t.Errorf("cleanText(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > tt.limit || !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
				t.Errorf("cleanText(%q) = %q: %d runes, valid %v", tt.in, got, n, utf8.ValidString(got))
			}
			if again := cleanText(got, tt.limit); again != got {
				t.Errorf("not idempotent: %q, then %q", got, again)
			}
		})
	}
}

// email254 is an address of 254 bytes, the most an email may have.
var email254 = "jenny@" + strings.Repeat(strings.Repeat("d", 63)+".", 3) + strings.Repeat("d", 44) + ".example.com"

func TestCleanEmail(t *testing.T) {
	t.Parallel()
	if len(email254) != 254 {
		t.Fatalf("email254 is %d bytes", len(email254))
	}
	tests := []struct{ in, want string }{
		{"jenny.rosen@example.com", "jenny.rosen@example.com"},
		{"  Jenny.Rosen@Example.COM \n", "jenny.rosen@example.com"},
		{"jenny+billing@example.co.uk", "jenny+billing@example.co.uk"},
		{"", ""},
		{"jenny rosen@example.com", ""},
		{"jenny@exa mple.com", ""},
		{"jenny\t@example.com", ""},
		{"jenny\x00@example.com", ""},
		{"jenny\u202e@example.com", ""},
		{"Jenny <jenny@example.com>", ""},
		{"<jenny@example.com>", ""},
		{"jenny@example.com (Jenny)", ""},
		{"jenny@example.com, eve@example.com", ""},
		{`"jenny"@example.com`, ""},
		{"jenny", ""},
		{"@example.com", ""},
		{"jenny@", ""},
		{"jenny@@example.com", ""},
		{"j\xffenny@example.com", ""},
		{"JENNY\xff@example.com", ""},
		{"jenny\u00a0rosen@example.com", ""},
		{"jenny\u200b@example.com", ""},
		{"jenny@localhost", ""},
		{"jenny@example.c0m", ""},
		{"José@Example.com", "josé@example.com"},
		{strings.Repeat("j", 64) + "@example.com", strings.Repeat("j", 64) + "@example.com"},
		{strings.Repeat("j", 65) + "@example.com", ""},
		{email254, email254},
		{"  " + strings.ToUpper(email254) + "\n", email254},
		{"j" + email254, ""},
	}
	for _, tt := range tests {
		if got := cleanEmail(tt.in); got != tt.want {
			t.Errorf("cleanEmail(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCleanID(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", "cus_OnMHOpJU2HN6Xv", "checkout.session", "warning_needs_response", "cs_test_a1", strings.Repeat("x", 255)} {
		if got := cleanID(ok); got != ok {
			t.Errorf("cleanID(%q) = %q, want it kept", ok, got)
		}
	}
	for _, bad := range []string{"cus_ X", `cus_\u0000X`, "cus_\x00X", "cus_\xffX", "cus_é", `cus_"X`, strings.Repeat("x", 256)} {
		if got := cleanID(bad); got != "" {
			t.Errorf("cleanID(%q) = %q, want none", bad, got)
		}
	}
}
