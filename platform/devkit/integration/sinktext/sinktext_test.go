package sinktext_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/sinktext"
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
	for _, c := range []struct{ name, in, want string }{
		{"NUL is removed", "Ada\x00Lovelace", "AdaLovelace"},
		{"C0, DEL and C1 controls are removed", "J\x07e\x1bn\x7fn\u0080y\u009b", "Jenny"},
		{"line breaks are one \\n", "a\r\nb\rc\u2028d\u2029e\vf\fg\u0085h\ni", "a\nb\nc\nd\ne\nf\ng\nh\ni"},
		{"tabs and spaces are kept", "a\t b\u00a0 c", "a\t b\u00a0 c"},
		{"bidi controls are removed", "invoice \u202Etxt.exe\u202C \u2066x\u2069\u200e\u200f\u061c", "invoice txt.exe x"},
		{"zero-width and other format characters are removed", "pay\u200bpal\u200d\u2060\ufeff\u00ad.com\U000E0041", "paypal.com"},
		{"an invalid byte is one U+FFFD", "\xffok", "\ufffdok"},
		{"a run of invalid bytes is one U+FFFD", "Ro\xff\xfe\xc0\xafsen", "Ro\ufffdsen"},
		{"a cut sequence is invalid bytes", "a\xe2\x82 b\xc3", "a\ufffd b\ufffd"},
		{"runs split by a removed character stay two", "a\xff\x00\xfeb", "a\ufffd\ufffdb"},
		{"a U+FFFD that came is kept", "a\ufffd\xffb", "a\ufffd\ufffdb"},
		{"plain, unchanged", "plain, unchanged: Zoë 山田 ✓", "plain, unchanged: Zoë 山田 ✓"},
	} {
		got := sinktext.Clean(c.in)
		if got != c.want {
			t.Errorf("%s: Clean(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
		if again := sinktext.Clean(got); again != got {
			t.Errorf("%s: Clean not idempotent: %q, then %q", c.name, got, again)
		}
		if want := strings.ToValidUTF8(c.in, "\ufffd"); sinktext.Clean(want) != got {
			t.Errorf("%s: Clean(%q) = %q: not what strings.ToValidUTF8 then Clean gives", c.name, c.in, got)
		}
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, in, want string }{
		{"plain text is kept", "Jenny Rosen", "Jenny Rosen"},
		{"empty", "", ""},
		{"trimmed, runs of space are one", "  Jenny \t\n Rosen \r\n", "Jenny Rosen"},
		{"every line break is a space", "Jenny\u0085Rosen\u2028of\vAcme\fLtd\u2029", "Jenny Rosen of Acme Ltd"},
		{"Unicode spaces are one space", "Jenny\u00a0\u3000Rosen\u2009", "Jenny Rosen"},
		{"a removed character does not split a run of space", "Jenny \x00 \u200b Rosen", "Jenny Rosen"},
		{"a removed character joins nothing", "Jen\x00ny Ro\u202esen", "Jenny Rosen"},
		{"a run of invalid bytes is one U+FFFD", "Ro\xff\xfesen \xff", "Ro\ufffdsen \ufffd"},
		{"emoji sequences lose their joiners", "Zoë 山田 👩\u200d💻", "Zoë 山田 👩💻"},
		{"only controls", "\x00\x01\u202e \t", ""},
	} {
		got := sinktext.Line(c.in)
		if got != c.want {
			t.Errorf("%s: Line(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
		if again := sinktext.Line(got); again != got {
			t.Errorf("%s: Line not idempotent: %q, then %q", c.name, got, again)
		}
		if old := strings.Join(strings.Fields(sinktext.Clean(c.in)), " "); got != old {
			t.Errorf("%s: Line(%q) = %q, but Clean folded by strings.Fields is %q", c.name, c.in, got, old)
		}
	}
}

// TestCleanTextAllocatesNothing holds the fast path identity's hot path
// relies on: a name or id that needs no cleaning is returned as it came.
func TestCleanTextAllocatesNothing(t *testing.T) {
	for _, s := range []string{"Jenny Rosen of Acme Ltd", "cus_OnMHOpJU2HN6Xv", "Zoë 山田, paid ✓", ""} {
		if n := testing.AllocsPerRun(100, func() { sinktext.Line(s) }); n != 0 {
			t.Errorf("Line(%q) allocates %v times, want 0", s, n)
		}
		lines := s + "\n\tsecond line"
		if n := testing.AllocsPerRun(100, func() { sinktext.Clean(lines) }); n != 0 {
			t.Errorf("Clean(%q) allocates %v times, want 0", lines, n)
		}
		if n := testing.AllocsPerRun(100, func() { sinktext.Truncate(s, 256, sinktext.Runes) }); n != 0 {
			t.Errorf("Truncate(%q) allocates %v times, want 0", s, n)
		}
	}
}

func BenchmarkLineClean(b *testing.B) {
	for _, c := range []struct{ name, in string }{
		{"ascii", "Jenny Rosen of Acme Ltd"},
		{"unicode", "Zoë Yamada 山田, paid ✓"},
		{"dirty", "  Jenny\x00 Ro\u202esen\n\tof \x07Acme\xff  "},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinktext.Line(c.in)
			}
		})
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
		{"an invalid byte is one byte of the prefix", "a\xff世界bc", 4, sinktext.Runes, "a\xff世…", true},
		{"bytes count an invalid byte as U+FFFD", "\xffabcdef", 6, sinktext.Bytes, "\xff…", true},
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

// longEmail is an address of sinktext.MaxEmail bytes.
var longEmail = "ada@" + strings.Repeat(strings.Repeat("d", 63)+".", 3) + strings.Repeat("d", 54) + ".com"

func TestValidEmail(t *testing.T) {
	if len(longEmail) != sinktext.MaxEmail {
		t.Fatalf("longEmail is %d bytes, want %d", len(longEmail), sinktext.MaxEmail)
	}
	for _, e := range []string{"ada@example.com", "ada.lovelace+billing@mail.example.co.uk", "a@xn--bcher-kva.example.com", "O'Brien@example.org",
		"josé@example.com", strings.Repeat("a", 64) + "@example.com", longEmail} {
		if !sinktext.ValidEmail(e) {
			t.Errorf("ValidEmail(%q) = false, want true", e)
		}
	}
	for _, e := range []string{
		"", "ada lovelace@example.com", " ada@example.com", "ada@example.com ", "ada", "ada@", "@example.com",
		"ada@localhost", "ada@example", "ada@exa mple.com", `"ada"@example.com`, "Ada <ada@example.com>",
		"ada@example.c0m", "ada@-example.com", "ada@example..com", "ada@[127.0.0.1]", "<@U024BE7LH>@evil.example",
		strings.Repeat("a", 65) + "@example.com", "a@" + strings.Repeat("b", 250) + ".com", "ada\x00@example.com",
		"ada\u202e@example.com", "ada\u200b@example.com", "ada\u00a0b@example.com", "ada\u0085@example.com",
		"ada\u2028@example.com", "ada\xff@example.com", "ada\ufffd@example.com", "ada@example.com\n", longEmail + "x",
	} {
		if sinktext.ValidEmail(e) {
			t.Errorf("ValidEmail(%q) = true, want false", e)
		}
	}
}
