package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/ratelimit"
	"github.com/switchyard/switchyard/platform/sinktext"
)

// DefaultBaseURL is HubSpot's API host.
const DefaultBaseURL = "https://api.hubapi.com"

// MaxBatchInputs is the most inputs HubSpot accepts in one batch call;
// UpsertContacts splits larger slices.
const MaxBatchInputs = 100

// DefaultRateLimitReserve is the share of X-HubSpot-RateLimit-Max the
// limiter leaves unused in each window, as a margin for other clients of
// the same private app and for requests in flight.
const DefaultRateLimitReserve = 0.1

// Config configures a Client. Only Token is required.
type Config struct {
	// BaseURL is HubSpot's API root; default DefaultBaseURL. Tests and
	// `switchyard dev` point it at the emulator: nothing else differs.
	BaseURL string
	// Token is the private-app token, sent as a Bearer token. It never
	// appears in errors or logs.
	Token config.Secret
	// HTTPClient sends the requests; default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock for the rate limiter and retry hints; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, returning ctx.Err() then; default a
	// timer. Tests pass one that advances a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// RateLimitReserve is the share of the window's limit left unused (see
	// DefaultRateLimitReserve); 0 means the default, negative means none.
	RateLimitReserve float64
}

// Client is a HubSpot CRM v3 contacts client. It is safe for concurrent
// use; all its calls share one rate limiter.
type Client struct {
	base  string
	token config.Secret
	http  *http.Client
	now   func() time.Time
	lim   *ratelimit.Limiter
}

// BaseURL is the API base the client calls (Config.BaseURL, or HubSpot's).
func (c *Client) BaseURL() string { return c.base }

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if !cfg.Token.IsSet() {
		return nil, errors.New("hubspot: token is required")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hubspot: invalid base URL %q", base)
	}
	c := &Client{
		base:  strings.TrimRight(base, "/"),
		token: cfg.Token,
		http:  cfg.HTTPClient,
		now:   cfg.Now,
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.now == nil {
		c.now = time.Now
	}
	sleep := cfg.Sleep
	if sleep == nil {
		sleep = lifecycle.Sleep
	}
	reserve := cfg.RateLimitReserve
	switch {
	case reserve == 0:
		reserve = DefaultRateLimitReserve
	case reserve < 0:
		reserve = 0
	}
	lim, err := ratelimit.New(ratelimit.Config{Read: readBudget, Window: defaultInterval, Reserve: reserve, Held: errHeld, Now: c.now, Sleep: sleep})
	if err != nil {
		return nil, fmt.Errorf("hubspot: %w", err)
	}
	c.lim = lim
	return c, nil
}

// apiError is the part of HubSpot's error bodies the client reads. 429s
// carry errorType and policyName instead of category. Messages are not
// kept: they may quote input values such as emails.
type apiError struct {
	Category      string `json:"category"`
	ErrorType     string `json:"errorType"`
	PolicyName    string `json:"policyName"`
	CorrelationID string `json:"correlationId"`
	Errors        []struct {
		Code string `json:"code"`
	} `json:"errors"`
}

// Policy names of HubSpot's 429 answers.
const (
	policyTenSecondly = "TEN_SECONDLY_ROLLING"
	policySecondly    = "SECONDLY"
	policyDaily       = "DAILY"
)

// do sends one request through the limiter and decodes a 2xx JSON answer
// into out (when non-nil). Any other answer is returned as a classified
// error (see classify) together with the status.
func (c *Client) do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("hubspot: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	if err := c.lim.Wait(ctx); err != nil {
		return 0, fmt.Errorf("hubspot: %s %s: wait for rate limit: %w", method, path, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, fmt.Errorf("hubspot: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("hubspot: %s %s: %w", method, path, ctx.Err())
		}
		// Network failure: the request may or may not have arrived; every
		// call here is idempotent, so retrying is safe.
		return 0, errclass.Transient(fmt.Errorf("hubspot: %s %s: %w", method, path, err))
	}
	defer func() { _ = resp.Body.Close() }()
	c.lim.Observe(resp.Header)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, errclass.Transient(fmt.Errorf("hubspot: %s %s: read answer: %w", method, path, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := c.classify(method, path, resp, raw)
		c.lim.Hold(errclass.RetryHint(err)) // the app's limit, not this request's: every worker waits
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("hubspot: %s %s: decode answer (http %d): %w", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, nil
}

// classify turns a non-2xx answer into an errclass error: 401/403 Auth,
// 400 and other 4xx Permanent, 429/5xx Transient with a retry hint. The
// hint is Retry-After when sent; otherwise, for a 429, it follows
// policyName as HubSpot's own clients do: TEN_SECONDLY_ROLLING waits out
// the window, SECONDLY one second, and DAILY until the next midnight UTC.
// A DAILY 429 stays transient (the budget returns tomorrow), but callers
// should alert on a hint that long rather than retry quietly.
//
// The error names the status, HubSpot's category or policy, error codes
// and correlation id; never HubSpot's message, which may quote emails.
func (c *Client) classify(method, path string, resp *http.Response, raw []byte) error {
	var ae apiError
	_ = json.Unmarshal(raw, &ae) // gateway errors are HTML: keep what parses
	var detail []string
	for _, w := range []string{ae.Category, ae.ErrorType, ae.PolicyName} {
		if w := token(w); w != "" {
			detail = append(detail, w)
		}
	}
	for _, e := range ae.Errors {
		if c := token(e.Code); c != "" {
			detail = append(detail, c)
		}
	}
	msg := fmt.Sprintf("hubspot: %s %s: http %d", method, path, resp.StatusCode)
	if len(detail) > 0 {
		msg += " " + strings.Join(detail, " ")
	}
	if id := token(ae.CorrelationID); id != "" {
		msg += " (correlation id " + id + ")"
	}
	err := errors.New(msg)
	classified := errclass.FromHTTP(resp.StatusCode, resp.Header, err)
	if resp.StatusCode == http.StatusTooManyRequests && errclass.RetryHint(classified) == 0 {
		return errclass.RetryAfter(err, c.policyWait(ae.PolicyName))
	}
	return classified
}

// token is a word from HubSpot's answer as an error may carry it: one
// clean line of at most 64 characters. Error texts become outcome reasons,
// dead letters and alerts; the answer is the vendor's, not ours.
func token(s string) string {
	s, _ = sinktext.Truncate(sinktext.Line(s), 64, sinktext.Runes)
	return s
}

// policyWait is how long a 429 of the policy asks to wait.
func (c *Client) policyWait(policy string) time.Duration {
	switch policy {
	case policySecondly:
		return time.Second
	case policyDaily:
		now := c.now().UTC()
		y, m, d := now.Date()
		return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Sub(now)
	default: // TEN_SECONDLY_ROLLING or unknown
		return c.lim.Window()
	}
}
