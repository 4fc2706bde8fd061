// Package slack posts messages to a Slack incoming webhook, and is the
// one place where alert text meets Slack's markup: Code encodes every
// value that came from outside as inert text, Console.Link makes the only
// links an alert may carry (to the operator's console).
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/sinktext"
)

// Client posts to one incoming webhook. It is safe for concurrent use.
type Client struct {
	url  config.Secret // the URL is the credential
	http *http.Client
}

// New returns a Client for webhookURL.
func New(webhookURL config.Secret, hc *http.Client) (*Client, error) {
	if !strings.HasPrefix(webhookURL.Reveal(), "http://") && !strings.HasPrefix(webhookURL.Reveal(), "https://") {
		return nil, fmt.Errorf("slack: the webhook URL must be http(s)")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{url: webhookURL, http: hc}, nil
}

// Post sends text, which must have been built with Code for every value
// that did not come from this code. Link previews are off: the only links
// are to the console, and unfurling a URL makes Slack fetch it. Errors are
// classified: 429 (with Retry-After) and 5xx transient, 404/410 (webhook
// revoked, channel archived) auth, other 4xx permanent. The webhook URL
// never appears in an error, and Slack's answer only as one cleaned line.
func (c *Client) Post(ctx context.Context, text string) error {
	body, _ := json.Marshal(map[string]any{"text": text, "unfurl_links": false, "unfurl_media": false})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url.Reveal(), bytes.NewReader(body))
	if err != nil {
		return errclass.Permanent(fmt.Errorf("slack: build request"))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return errclass.Transient(fmt.Errorf("slack: post: network error"))
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	// The answer is Slack's (or a proxy's): at most 512 bytes, possibly cut
	// inside a character. It ends up in the ledger (PostgreSQL refuses
	// invalid UTF-8) and in a dead-letter reason (proto3 strings must be
	// UTF-8), so it is cleaned and kept short.
	answer, _ := sinktext.Truncate(sinktext.Line(string(reply)), 200, sinktext.Runes)
	err = fmt.Errorf("slack: %d %s", resp.StatusCode, answer)
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return errclass.Auth(err) // no_service / channel_is_archived: fix the configuration
	}
	return errclass.FromHTTP(resp.StatusCode, resp.Header, err)
}
