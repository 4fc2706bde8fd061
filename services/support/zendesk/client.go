package zendesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/ratelimit"
	"github.com/switchyard/switchyard/platform/sinktext"
)

// Config configures a Client. BaseURL, Email and APIToken are required.
type Config struct {
	// BaseURL is the account's root, e.g. "https://acme.zendesk.com". Tests
	// and `switchyard dev` point it at the emulator: nothing else differs.
	BaseURL string
	// Email is the API agent's email; the client authenticates with
	// `Basic base64("<Email>/token:<APIToken>")`.
	Email string
	// APIToken is the agent's API token. It never appears in errors or logs.
	APIToken config.Secret
	// HTTPClient sends the requests; default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock for the rate limiter; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, returning ctx.Err() then; default a
	// timer. Tests pass one that advances a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client is a Zendesk Support tickets client. It is safe for concurrent
// use; all its calls share one rate limiter.
type Client struct {
	base  *url.URL
	email string
	token config.Secret
	http  *http.Client
	lim   *ratelimit.Limiter
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if cfg.BaseURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("zendesk: invalid base URL %q", cfg.BaseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if strings.TrimSpace(cfg.Email) == "" {
		return nil, errors.New("zendesk: agent email is required")
	}
	if !cfg.APIToken.IsSet() {
		return nil, errors.New("zendesk: API token is required")
	}
	c := &Client{base: u, email: cfg.Email, token: cfg.APIToken, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	now, sleep := cfg.Now, cfg.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = lifecycle.Sleep
	}
	if c.lim, err = ratelimit.New(ratelimit.Config{Read: readBudget, Window: window, Held: errHeld, Now: now, Sleep: sleep}); err != nil {
		return nil, fmt.Errorf("zendesk: %w", err)
	}
	return c, nil
}

// apiError is the part of Zendesk's JSON error bodies the client reads:
// the error code and the names of the invalid fields. Descriptions are not
// kept: they may quote input values such as emails. 429 and 5xx bodies are
// often plain text and parse to nothing.
type apiError struct {
	Error   json.RawMessage            `json:"error"`
	Details map[string]json.RawMessage `json:"details"`
}

// code returns the error code when "error" is a string (it is an object
// on some endpoints).
func (a apiError) code() string {
	var s string
	if json.Unmarshal(a.Error, &s) == nil {
		return s
	}
	return ""
}

// do sends one request through the limiter to target (a path under the
// base URL, or an absolute URL on the same host) and decodes a 2xx JSON
// answer into out. Any other answer is a classified error, returned with
// the status; op names the operation in errors.
func (c *Client) do(ctx context.Context, op, method, target string, in, out any) (int, error) {
	u, err := c.resolve(target)
	if err != nil {
		return 0, fmt.Errorf("zendesk: %s: %w", op, err)
	}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("zendesk: %s: encode: %w", op, err)
		}
		body = bytes.NewReader(raw)
	}
	if err := c.lim.Wait(ctx); err != nil {
		return 0, fmt.Errorf("zendesk: %s: wait for rate limit: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("zendesk: %s: %w", op, err)
	}
	req.SetBasicAuth(c.email+"/token", c.token.Reveal())
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("zendesk: %s: %w", op, ctx.Err())
		}
		// Network failure: the request may or may not have been acted on.
		// For a create, that is what EnsureTicket's lookup (MaybeSent) on
		// the caller's retry is for.
		return 0, errclass.Transient(fmt.Errorf("zendesk: %s: %w", op, scrubURLError(err)))
	}
	defer func() { _ = resp.Body.Close() }()
	c.lim.Observe(resp.Header)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, errclass.Transient(fmt.Errorf("zendesk: %s: read answer: %w", op, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := classify(op, resp, raw)
		c.lim.Hold(errclass.RetryHint(err)) // the account's, not this request's: every worker waits
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("zendesk: %s: decode answer (http %d): %w", op, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// resolve turns target into a URL under the base. An absolute target (a
// next_page link) must be on the base's scheme and host, so the
// credentials are never sent elsewhere.
func (c *Client) resolve(target string) (*url.URL, error) {
	if strings.HasPrefix(target, "/") {
		u := *c.base
		path, query, _ := strings.Cut(target, "?")
		u.Path += path
		u.RawQuery = query
		return &u, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, errors.New("invalid pagination link")
	}
	if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
		return nil, fmt.Errorf("pagination link leaves %s", c.base.Host)
	}
	return u, nil
}

// scrubURLError drops the URL from a *url.Error: a URL may carry an
// external_id or, were a caller to put them there, credentials.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// classify turns a non-2xx answer into an errclass error: 401/403 Auth,
// 422 and other 4xx Permanent, 429/5xx Transient with the Retry-After hint.
// The error names the status, Zendesk's error code and, for 422, the
// invalid fields; never descriptions or values.
func classify(op string, resp *http.Response, raw []byte) error {
	var ae apiError
	_ = json.Unmarshal(raw, &ae) // plain-text bodies: keep what parses
	msg := fmt.Sprintf("zendesk: %s: http %d", op, resp.StatusCode)
	if code := token(ae.code()); code != "" {
		msg += " " + code
	}
	if len(ae.Details) > 0 {
		fields := make([]string, 0, len(ae.Details))
		for k := range ae.Details {
			fields = append(fields, token(k))
		}
		slices.Sort(fields)
		msg += " (invalid: " + strings.Join(fields, ", ") + ")"
	}
	return errclass.FromHTTP(resp.StatusCode, resp.Header, errors.New(msg))
}

// token is a word from Zendesk's answer as an error may carry it: one
// clean line of at most 64 characters. Error texts become dead-letter
// reasons and alerts; the answer is the vendor's, not ours.
func token(s string) string {
	s, _ = sinktext.Truncate(sinktext.Line(s), 64, sinktext.Runes)
	return s
}

// mask is logging.MaskEmail for use in errors.
func mask(email string) string { return logging.MaskEmail(strings.TrimSpace(email)) }
