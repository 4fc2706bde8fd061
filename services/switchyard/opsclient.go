package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// opsClient calls the projector's status API with an ops token.
type opsClient struct {
	base  string
	token string
	http  *http.Client
}

func newOpsClient(base, token string, timeout time.Duration) *opsClient {
	return &opsClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: timeout}}
}

// do sends a request and decodes a 200 answer into v; any other status is
// an error carrying the API's message.
func (c *opsClient) do(ctx context.Context, method, path string, v any) error {
	return c.doBody(ctx, method, path, nil, v)
}

// doBody is do with a JSON request body.
func (c *opsClient) doBody(ctx context.Context, method, path string, body []byte, v any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("status API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.Unmarshal(answer, &e)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, orDefault(e.Error.Message, strings.TrimSpace(string(answer))))
	}
	return json.Unmarshal(answer, v)
}
