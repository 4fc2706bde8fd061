package stripeapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
)

// endpointList is Stripe's list envelope of webhook endpoints.
type endpointList struct {
	Object  string `json:"object"`
	URL     string `json:"url"`
	HasMore bool   `json:"has_more"`
	Data    []struct {
		ID            string   `json:"id"`
		Object        string   `json:"object"`
		APIVersion    *string  `json:"api_version"`
		EnabledEvents []string `json:"enabled_events"`
		Status        string   `json:"status"`
		URL           string   `json:"url"`
		Livemode      bool     `json:"livemode"`
		Secret        *string  `json:"secret"`
	} `json:"data"`
}

func (l endpointList) ids() []string {
	out := make([]string, len(l.Data))
	for i, e := range l.Data {
		out[i] = e.ID
	}
	return out
}

func listEndpoints(t *testing.T, url, key, query string) endpointList {
	t.Helper()
	r := get(t, url+"/v1/webhook_endpoints"+query, key)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/webhook_endpoints%s: %d %s", query, r.status, r.body)
	}
	var l endpointList
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatal(err)
	}
	if l.Object != "list" || l.URL != "/v1/webhook_endpoints" {
		t.Fatalf("envelope %+v, want Stripe's list", l)
	}
	return l
}

func endpoint(id string, created int64, live bool) string {
	return fmt.Sprintf(`{"id":%q,"object":"webhook_endpoint","api_version":null,"application":null,"created":%d,
		"description":null,"enabled_events":["invoice.paid","charge.refunded"],"livemode":%t,"metadata":{},
		"secret":"whsec_shown_only_at_creation","status":"enabled","url":"https://hooks.example.com/%s"}`, id, created, live, id)
}

func TestListWebhookEndpoints(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	for i := range 5 {
		mustNoErr(t, srv.PutWebhookEndpoint(endpoint(fmt.Sprintf("we_%d", i), int64(1700000000+i), false)))
	}
	mustNoErr(t, srv.Put(endpoint("we_live", 1700000100, true)))

	all := listEndpoints(t, url, testKey, "")
	if want := []string{"we_4", "we_3", "we_2", "we_1", "we_0"}; !slices.Equal(all.ids(), want) || all.HasMore {
		t.Errorf("test key lists %v (has_more %t), want %v newest first", all.ids(), all.HasMore, want)
	}
	for _, e := range all.Data {
		if e.Secret != nil || e.Status != "enabled" || e.APIVersion != nil || len(e.EnabledEvents) != 2 || e.Livemode {
			t.Errorf("listed %+v, want the stored endpoint without its secret", e)
		}
	}
	if got := listEndpoints(t, url, liveKey, "").ids(); !slices.Equal(got, []string{"we_live"}) {
		t.Errorf("live key lists %v, want only the live endpoint", got)
	}

	first := listEndpoints(t, url, testKey, "?limit=2")
	next := listEndpoints(t, url, testKey, "?limit=2&starting_after=we_3")
	back := listEndpoints(t, url, testKey, "?limit=2&ending_before=we_1")
	if !slices.Equal(first.ids(), []string{"we_4", "we_3"}) || !first.HasMore ||
		!slices.Equal(next.ids(), []string{"we_2", "we_1"}) || !next.HasMore ||
		!slices.Equal(back.ids(), []string{"we_3", "we_2"}) || !back.HasMore {
		t.Errorf("pages %v %v %v, want [we_4 we_3] [we_2 we_1] [we_3 we_2], all with more", first.ids(), next.ids(), back.ids())
	}

	if r := get(t, url+"/v1/webhook_endpoints/we_2", testKey); r.status != http.StatusOK || strings.Contains(string(r.body), "whsec_") {
		t.Errorf("retrieve we_2: %d %s", r.status, r.body)
	}
	if r := get(t, url+"/v1/webhook_endpoints/we_live", testKey); r.status != http.StatusNotFound ||
		!strings.Contains(decodeError(t, r).Error.Message, "exists in live mode") {
		t.Errorf("retrieve a live endpoint with a test key: %d %s", r.status, r.body)
	}
	for query, want := range map[string]string{
		"?limit=101":           "Invalid limit",
		"?url=x":               "Received unknown parameter: url",
		"?starting_after=we_9": "No such webhook_endpoint: 'we_9'",
		"?starting_after=we_1&ending_before=we_3": "You may only specify one of these parameters",
	} {
		r := get(t, url+"/v1/webhook_endpoints"+query, testKey)
		if r.status == http.StatusOK || !strings.Contains(decodeError(t, r).Error.Message, want) {
			t.Errorf("GET /v1/webhook_endpoints%s: %d %s, want %q", query, r.status, r.body, want)
		}
	}
}

// TestStripeGoListsWebhookEndpoints: stripe-go's iterator pages through
// the emulator's list and decodes every field the hub reads.
func TestStripeGoListsWebhookEndpoints(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	for i := range 25 {
		mustNoErr(t, srv.PutWebhookEndpoint(endpoint(fmt.Sprintf("we_%02d", i), int64(1700000000+i), false)))
	}
	params := &stripe.WebhookEndpointListParams{}
	params.Limit = stripe.Int64(10)
	it := stripeClient(t, url, testKey, 0).WebhookEndpoints.List(params)
	n := 0
	for it.Next() {
		we := it.WebhookEndpoint()
		if we.Status != "enabled" || len(we.EnabledEvents) != 2 || we.URL == "" || we.Secret != "" {
			t.Errorf("decoded %+v", we)
		}
		n++
	}
	mustNoErr(t, it.Err())
	if n != 25 {
		t.Errorf("iterated %d endpoints, want 25", n)
	}
}
