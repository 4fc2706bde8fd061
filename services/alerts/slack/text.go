package slack

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/switchyard/switchyard/platform/sinktext"
)

// MaxValue is how many characters of one value an alert shows; longer
// values are cut with an ellipsis (the whole value stays in the dead
// letter and the event log).
const MaxValue = 300

// escaper applies Slack's documented escaping for mrkdwn: &, < and > are
// its control characters (links, mentions, <!channel>, dates) and become
// HTML entities; Slack decodes these three, and only these, for display.
var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Code is the one way a value that did not come from this code — anything
// from Stripe, a vendor, a dead letter or another service — enters a Slack
// message. It returns the value as one inline code span of inert text:
//
//   - sinktext.Line: valid UTF-8, no control or bidi/zero-width characters,
//     one line (a newline cannot start a "> quote" or a fake header line);
//   - cut to MaxValue characters with an ellipsis;
//   - backticks replaced by U+02CB (ˋ), so the value cannot close the span;
//   - &, < and > escaped, so <!channel>, <!here>, <@U…>, <!subteam^…> and
//     <https://evil.example|Reset your password> arrive as the characters
//     they are, not as a mention or a link with a lying label;
//   - wrapped in backticks: inside inline code Slack applies no *bold*,
//     _italic_, ~strike~ or :emoji:, and does not turn URLs or bare domains
//     into links, so a URL in data is shown, never offered as a link.
//
// An empty value is shown as (none). The only links an alert carries are
// made by Link, to the operator's console.
func Code(v string) string {
	v, _ = sinktext.Truncate(sinktext.Line(v), MaxValue, sinktext.Runes)
	if v == "" {
		return "(none)"
	}
	return "`" + escaper.Replace(strings.ReplaceAll(v, "`", "ˋ")) + "`"
}

// Console is the base URL of the operator's console: the only place an
// alert may link to. The zero value makes no links.
type Console struct{ base *url.URL }

// ParseConsole validates the console's base URL (from configuration, never
// from data): absolute http(s), no query, fragment or user info. "" gives
// the zero Console.
func ParseConsole(raw string) (Console, error) {
	if raw == "" {
		return Console{}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Console{}, fmt.Errorf("%q is not an http(s) base URL", raw)
	}
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	return Console{base: u}, nil
}

// IsSet reports whether links can be made.
func (c Console) IsSet() bool { return c.base != nil }

// Link returns a Slack link to a console page, "<url|label>", or "" when
// no console is configured. Each path segment is escaped, so a segment
// cannot leave the console; label is text written here, not data, and is
// escaped all the same.
func (c Console) Link(label string, segments ...string) string {
	if c.base == nil {
		return ""
	}
	href := c.base.String()
	for _, s := range segments {
		href += "/" + url.PathEscape(s)
	}
	return "<" + escaper.Replace(href) + "|" + escaper.Replace(strings.NewReplacer("|", "/", "\n", " ").Replace(label)) + ">"
}
