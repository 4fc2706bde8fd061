// Package client calls the projector's status API (openapi.json) with an
// ops bearer token, and holds the API's JSON documents. It imports no
// database driver and nothing of the projector's internals: it is what
// the switchyard CLI uses for status, trace, rebuild, dead-letter actions
// and linking.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ReconcileRequestPrefix starts the request id `switchyard reconcile`
// gives each event it publishes (X-Request-Id, kept by the gateway in the
// message's Switchyard-Request-Id header): how the digest counts drift
// healed.
const ReconcileRequestPrefix = "reconcile_"

// Client calls one status API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the status API at base (http://host:port) that
// presents token; timeout bounds each request (0: none, for a rebuild).
func New(base, token string, timeout time.Duration) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: timeout}}
}

// Do sends a request with body (JSON-encoded unless nil) and decodes a 200
// answer into v; any other status is an error carrying the API's message.
// A status API that cannot be reached gives an error wrapping *url.Error.
func (c *Client) Do(ctx context.Context, method, path string, body, v any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
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
		msg := e.Error.Message
		if msg == "" {
			msg = strings.TrimSpace(string(answer))
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	return json.Unmarshal(answer, v)
}

// Status is GET /v1/status: the pipeline's health.
func (c *Client) Status(ctx context.Context) (Overview, error) {
	var o Overview
	err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &o)
	return o, err
}

// Digest is GET /v1/digest: the last 24 hours in numbers.
func (c *Client) Digest(ctx context.Context) (Digest, error) {
	var d Digest
	err := c.Do(ctx, http.MethodGet, "/v1/digest", nil, &d)
	return d, err
}

// Customer is GET /v1/customers/{id}: one customer by canonical id (or an
// id merged into it).
func (c *Client) Customer(ctx context.Context, id string) (View, error) {
	var v View
	err := c.Do(ctx, http.MethodGet, "/v1/customers/"+url.PathEscape(id), nil, &v)
	return v, err
}

// Customer lookups for FindCustomers.
const (
	ByEmail          = "email"
	ByStripeCustomer = "stripe_customer_id"
	ByStripeEvent    = "stripe_event_id"
)

// FindCustomers is GET /v1/customers?by=value: the customers with that
// email (ByEmail), Stripe customer or Stripe event.
func (c *Client) FindCustomers(ctx context.Context, by, value string) ([]View, error) {
	var res struct {
		Customers []View `json:"customers"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/customers?"+url.Values{by: {value}}.Encode(), nil, &res)
	return res.Customers, err
}

// Timeline is GET /v1/customers/{id}/timeline: up to limit entries after
// the cursor (a previous page's Next; "" for the first page), oldest first.
func (c *Client) Timeline(ctx context.Context, id, after string, limit int) (TimelinePage, error) {
	path := "/v1/customers/" + url.PathEscape(id) + "/timeline?limit=" + strconv.Itoa(limit)
	if after != "" {
		path += "&after=" + url.QueryEscape(after)
	}
	var page TimelinePage
	err := c.Do(ctx, http.MethodGet, path, nil, &page)
	return page, err
}

// FullTimeline reads every page of a customer's timeline, oldest first.
func (c *Client) FullTimeline(ctx context.Context, id string) ([]TimelineEntry, error) {
	var all []TimelineEntry
	after := ""
	for {
		page, err := c.Timeline(ctx, id, after, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Entries...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// Rebuild is POST /v1/rebuild (operate scope): the projector rebuilds the
// view from the streams and answers when it has swapped it in.
func (c *Client) Rebuild(ctx context.Context) (RebuildReport, error) {
	var rep RebuildReport
	err := c.Do(ctx, http.MethodPost, "/v1/rebuild", nil, &rep)
	return rep, err
}

// Replay is POST /v1/dead-letters/{seq}/replay (operate scope).
func (c *Client) Replay(ctx context.Context, seq uint64) (ActionResult, error) {
	var res ActionResult
	err := c.Do(ctx, http.MethodPost, "/v1/dead-letters/"+strconv.FormatUint(seq, 10)+"/replay", nil, &res)
	return res, err
}

// Discard is POST /v1/dead-letters/{seq}/discard (operate scope); note
// says why the failure needs no replay.
func (c *Client) Discard(ctx context.Context, seq uint64, note string) (ActionResult, error) {
	var res ActionResult
	err := c.Do(ctx, http.MethodPost, "/v1/dead-letters/"+strconv.FormatUint(seq, 10)+"/discard", map[string]string{"note": note}, &res)
	return res, err
}

// Unlinked is GET /v1/unlinked: the records with no Stripe customer and
// their candidate customers.
func (c *Client) Unlinked(ctx context.Context) ([]UnlinkedPayer, error) {
	var res struct {
		Unlinked []UnlinkedPayer `json:"unlinked"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/unlinked", nil, &res)
	return res.Unlinked, err
}

// Link is POST /v1/customers/{guest}/link (operate scope): identity merges
// the unlinked record guest into customer, audited with note.
func (c *Client) Link(ctx context.Context, guest, customer, note string) (LinkResult, error) {
	var res LinkResult
	err := c.Do(ctx, http.MethodPost, "/v1/customers/"+url.PathEscape(guest)+"/link", map[string]string{"customer_id": customer, "note": note}, &res)
	return res, err
}
