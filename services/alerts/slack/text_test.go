package slack_test

import (
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/services/alerts/slack"
)

var entity = regexp.MustCompile(`&(amp|lt|gt);`)

// Every corpus entry becomes one code span of inert text: no <, > or bare
// &, no backtick inside, no control or invisible characters, at most
// MaxValue characters shown.
func TestCodeMakesHostileValuesInert(t *testing.T) {
	for _, h := range testkit.HostileCorpus() {
		t.Run(h.Name, func(t *testing.T) {
			got := slack.Code(h.Value)
			if !utf8.ValidString(got) {
				t.Fatalf("Code(%q) is not valid UTF-8", h.Value)
			}
			if !strings.HasPrefix(got, "`") || !strings.HasSuffix(got, "`") || strings.Count(got, "`") != 2 {
				t.Errorf("Code(%.80q) = %.200q: not one code span", h.Value, got)
			}
			if strings.ContainsAny(got, "<>\n") || strings.Contains(entity.ReplaceAllString(got, ""), "&") {
				t.Errorf("Code(%.80q) = %.200q: live markup", h.Value, got)
			}
			for _, r := range got {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Errorf("Code(%.80q) keeps %U", h.Value, r)
				}
			}
			shown := strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(strings.Trim(got, "`"))
			if n := utf8.RuneCountInString(shown); n > slack.MaxValue {
				t.Errorf("Code shows %d characters, more than %d", n, slack.MaxValue)
			}
		})
	}
	for _, c := range []struct{ in, want string }{
		{"<!channel> <https://evil.example|Reset your password>", "`&lt;!channel&gt; &lt;https://evil.example|Reset your password&gt;`"},
		{"Tom & Jerry", "`Tom &amp; Jerry`"},
		{"a `b` c", "`a ˋbˋ c`"},
		{"two\nlines", "`two lines`"},
		{"", "(none)"},
	} {
		if got := slack.Code(c.in); got != c.want {
			t.Errorf("Code(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestConsoleLinks(t *testing.T) {
	if l := (slack.Console{}).Link("x", "console"); l != "" {
		t.Errorf("no console configured, yet a link: %q", l)
	}
	c, err := slack.ParseConsole("https://ops.example.com/switchyard/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Link("Open in the console", "console", "failures", "12"), "<https://ops.example.com/switchyard/console/failures/12|Open in the console>"; got != want {
		t.Errorf("Link = %q, want %q", got, want)
	}
	if got := c.Link("a|b", "..", "x/y?z#w"); !strings.HasPrefix(got, "<https://ops.example.com/switchyard/../x%2Fy%3Fz%23w|a/b>") {
		t.Errorf("a segment left its place or the label its link: %q", got)
	}
	for _, bad := range []string{"ops.example.com", "javascript:alert(1)", "https://u:p@ops.example.com", "https://ops.example.com/?a=b", "https://ops.example.com/#x"} {
		if _, err := slack.ParseConsole(bad); err == nil {
			t.Errorf("ParseConsole(%q) accepted", bad)
		}
	}
}
