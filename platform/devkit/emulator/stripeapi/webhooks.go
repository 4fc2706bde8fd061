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
	limit := defaultListLimit
	var startingAfter, endingBefore string
	for _, k := range sortedKeys(q) {
		v := q[k][len(q[k])-1]
		if e := unsupported(k); e != nil {
			c.fail(http.StatusBadRequest, e)
			return
		}
		switch k {
		case "limit", "starting_after", "ending_before":
		default:
			c.fail(http.StatusBadRequest, unknownParam(k))
			return
		}
		if v == "" {
			c.fail(http.StatusBadRequest, emptyParam(k))
			return
		}
		switch k {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil {
				c.fail(http.StatusBadRequest, invalidInteger(k, v))
				return
			}
			if n < 1 || n > maxListLimit {
				c.fail(http.StatusBadRequest, &apiError{Type: typeInvalidRequest, Param: k,
					Message: fmt.Sprintf("Invalid limit: must be between 1 and %d", maxListLimit)})
				return
			}
			limit = n
		case "starting_after":
			startingAfter = v
		case "ending_before":
			endingBefore = v
		}
	}
	if startingAfter != "" && endingBefore != "" {
		c.fail(http.StatusBadRequest, onlyOneOf("ending_before", "starting_after"))
		return
	}

	s.mu.Lock()
	type entry struct {
		id      string
		created int64
		raw     json.RawMessage
	}
	var all []entry
	for id, o := range s.objects[kindWebhookEndpoint] {
		if o.livemode != (c.mode == modeLive) {
			continue
		}
		var head struct {
			Created int64 `json:"created"`
		}
		_ = json.Unmarshal(o.raw, &head) // a missing created sorts last
		all = append(all, entry{id, head.Created, bytes.Clone(o.raw)})
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b entry) int {
		if d := cmp.Compare(b.created, a.created); d != 0 {
			return d
		}
		return cmp.Compare(a.id, b.id)
	})
	page := all
	for _, cur := range []struct{ param, id string }{{"starting_after", startingAfter}, {"ending_before", endingBefore}} {
		if cur.id == "" {
			continue
		}
		i := slices.IndexFunc(all, func(e entry) bool { return e.id == cur.id })
		if i < 0 {
			c.fail(http.StatusNotFound, noSuch(kindWebhookEndpoint, cur.id, cur.param, c.mode, false))
			return
		}
		if cur.param == "starting_after" {
			page = all[i+1:]
		} else {
			page = all[:i]
		}
	}
	hasMore := len(page) > limit
	if hasMore {
		if endingBefore != "" {
			page = page[len(page)-limit:]
		} else {
			page = page[:limit]
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, e := range page {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e.raw)
	}
	fmt.Fprintf(&b, `],"has_more":%t,"url":"/v1/webhook_endpoints"}`, hasMore)
	c.ok(b.Bytes())
}
