// Package slack posts messages to a Slack incoming webhook.
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

// Post sends text. Errors are classified: 429 (with Retry-After) and 5xx
// transient, 404/410 (webhook revoked, channel archived) auth, other 4xx
// permanent. The webhook URL never appears in an error.
func (c *Client) Post(ctx context.Context, text string) error {
	body, _ := json.Marshal(map[string]string{"text": text})
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
	err = fmt.Errorf("slack: %d %s", resp.StatusCode, strings.TrimSpace(string(reply)))
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return errclass.Auth(err) // no_service / channel_is_archived: fix the configuration
	}
	return errclass.FromHTTP(resp.StatusCode, resp.Header, err)
}
