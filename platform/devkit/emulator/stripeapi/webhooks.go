package stripeapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// kindWebhookEndpoint is the webhook endpoint object, which the Dashboard
// (or the API) configures: where Stripe delivers events, which event types
// (enabled_events, ["*"] for all), the API version events are rendered in
// (api_version, null for the account's default) and whether it is
// enabled (status).
const kindWebhookEndpoint = "webhook_endpoint"

// PutWebhookEndpoint stores a webhook endpoint; see PutCustomer. Its
// "secret", which Stripe returns only when an endpoint is created, is
// dropped: a list or retrieve never shows it.
func (s *Server) PutWebhookEndpoint(obj any) error { return s.put(kindWebhookEndpoint, obj) }

// listWebhookEndpoints answers GET /v1/webhook_endpoints: the key's mode's
// endpoints, newest first (ties by id), with Stripe's cursor pagination
// (starting_after / ending_before an endpoint id, limit 1..100, default
// 10) and list envelope.
func (s *Server) listWebhookEndpoints(c *call, q url.Values) {
	p, e := parseEndpointListParams(q)
	if e != nil {
		c.fail(http.StatusBadRequest, e)
		return
	}
	page, hasMore, e := p.page(s.webhookEndpoints(c.mode), c.mode)
	if e != nil {
		c.fail(http.StatusNotFound, e)
		return
	}
	c.ok(endpointList(page, hasMore))
}

// endpointListParams are the query parameters of GET /v1/webhook_endpoints.
// At most one of startingAfter and endingBefore is set.
type endpointListParams struct {
	limit         int
	startingAfter string
	endingBefore  string
}

// parseEndpointListParams validates the list query the way Stripe does, in
// key order: unsupported and unknown parameters, empty values, a limit that
// is not an integer in 1..maxListLimit, and both cursors at once are all
// invalid requests.
func parseEndpointListParams(q url.Values) (endpointListParams, *apiError) {
	p := endpointListParams{limit: defaultListLimit}
	for _, k := range sortedKeys(q) {
		v := q[k][len(q[k])-1]
		if e := unsupported(k); e != nil {
			return p, e
		}
		switch k {
		case "limit", "starting_after", "ending_before":
		default:
			return p, unknownParam(k)
		}
		if v == "" {
			return p, emptyParam(k)
		}
		switch k {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil {
				return p, invalidInteger(k, v)
			}
			if n < 1 || n > maxListLimit {
				return p, &apiError{Type: typeInvalidRequest, Param: k,
					Message: fmt.Sprintf("Invalid limit: must be between 1 and %d", maxListLimit)}
			}
			p.limit = n
		case "starting_after":
			p.startingAfter = v
		case "ending_before":
			p.endingBefore = v
		}
	}
	if p.startingAfter != "" && p.endingBefore != "" {
		return p, onlyOneOf("ending_before", "starting_after")
	}
	return p, nil
}

// endpointEntry is one stored webhook endpoint, as listed.
type endpointEntry struct {
	id      string
	created int64
	raw     json.RawMessage
}

// webhookEndpoints snapshots mode's webhook endpoints, newest first (ties
// by id); an endpoint without a created timestamp sorts last.
func (s *Server) webhookEndpoints(m mode) []endpointEntry {
	s.mu.Lock()
	var all []endpointEntry
	for id, o := range s.objects[kindWebhookEndpoint] {
		if o.livemode != (m == modeLive) {
			continue
		}
		var head struct {
			Created int64 `json:"created"`
		}
		_ = json.Unmarshal(o.raw, &head) // a missing created sorts last
		all = append(all, endpointEntry{id, head.Created, bytes.Clone(o.raw)})
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b endpointEntry) int {
		if d := cmp.Compare(b.created, a.created); d != 0 {
			return d
		}
		return cmp.Compare(a.id, b.id)
	})
	return all
}

// page cuts p's page out of all: the entries after starting_after or before
// ending_before (an unknown cursor id is a resource_missing error), at most
// limit of them, taken nearest the cursor. hasMore reports whether the cut
// left entries out on the far side.
func (p endpointListParams) page(all []endpointEntry, m mode) (page []endpointEntry, hasMore bool, e *apiError) {
	page = all
	// parseEndpointListParams lets through at most one cursor.
	if p.startingAfter != "" {
		i := slices.IndexFunc(all, func(x endpointEntry) bool { return x.id == p.startingAfter })
		if i < 0 {
			return nil, false, noSuch(kindWebhookEndpoint, p.startingAfter, "starting_after", m, false)
		}
		page = all[i+1:]
	}
	if p.endingBefore != "" {
		i := slices.IndexFunc(all, func(x endpointEntry) bool { return x.id == p.endingBefore })
		if i < 0 {
			return nil, false, noSuch(kindWebhookEndpoint, p.endingBefore, "ending_before", m, false)
		}
		page = all[:i]
	}
	hasMore = len(page) > p.limit
	if hasMore {
		if p.endingBefore != "" {
			page = page[len(page)-p.limit:]
		} else {
			page = page[:p.limit]
		}
	}
	return page, hasMore, nil
}

// endpointList renders page in Stripe's list envelope.
func endpointList(page []endpointEntry, hasMore bool) json.RawMessage {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, e := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e.raw)
	}
	fmt.Fprintf(&b, `],"has_more":%t,"url":"/v1/webhook_endpoints"}`, hasMore)
	return b.Bytes()
}
