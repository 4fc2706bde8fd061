package stripeapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
)

// product is a product in Stripe's shape (API version 2023-10-16: features,
// not yet marketing_features), as GET /v1/products/{id} answers it.
func product(id, name string, livemode bool) map[string]any {
	return map[string]any{
		"id": id, "object": "product", "active": true, "created": 1696965932, "default_price": nil,
		"description": nil, "features": []any{}, "images": []any{}, "livemode": livemode, "metadata": map[string]any{},
		"name": name, "package_dimensions": nil, "shippable": nil, "statement_descriptor": nil, "tax_code": nil,
		"unit_label": nil, "updated": 1696965932, "url": nil,
	}
}

// productEvent is a product.* event envelope carrying obj.
func productEvent(t *testing.T, id, typ string, created int64, obj map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": stripeapi.DefaultAPIVersion, "created": created,
		"data": map[string]any{"object": obj}, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil}, "type": typ,
	})
	mustNoErr(t, err)
	return raw
}

func TestRetrieveProduct(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	want := product("prod_OnMHDH6VBmYlTr", "Switchyard Pro", false)
	mustNoErr(t, srv.PutProduct(want))
	mustNoErr(t, srv.PutProduct(product("prod_live", "Live Plan", true)))

	r := get(t, url+"/v1/products/prod_OnMHDH6VBmYlTr", testKey)
	wantJSON, _ := json.Marshal(want)
	if r.status != http.StatusOK || !jsonEqual(t, r.body, wantJSON) {
		t.Fatalf("status %d, body %s; want 200 and the product put", r.status, r.body)
	}

	tests := []struct {
		name       string
		path       string
		key        string
		wantStatus int
		wantMsg    string
	}{
		{"unknown product", "/v1/products/prod_missing", testKey, 404, "No such product: 'prod_missing'"},
		{"live product, test key", "/v1/products/prod_live", testKey, 404,
			"No such product: 'prod_live'; a similar object exists in live mode, but a test mode key was used to make this request."},
		{"no key", "/v1/products/prod_OnMHDH6VBmYlTr", "", 401, "You did not provide an API key."},
		{"unknown key", "/v1/products/prod_OnMHDH6VBmYlTr", "sk_test_51EmuLatorKeyXXXXwxyz9999", 401, "Invalid API Key provided: sk_test_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, url+tt.path, tt.key)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			e := decodeError(t, r).Error
			if e.Type != "invalid_request_error" || !strings.HasPrefix(e.Message, tt.wantMsg) {
				t.Errorf("error = %+v, want invalid_request_error %q…", e, tt.wantMsg)
			}
			if tt.wantStatus == 404 && (e.Code != "resource_missing" || e.Param != "id") {
				t.Errorf("error = %+v, want resource_missing with param id", e)
			}
		})
	}
	if r := get(t, url+"/v1/products/prod_live", liveKey); r.status != http.StatusOK {
		t.Errorf("live key, live product: status %d: %s", r.status, r.body)
	}

	// stripe-go decodes it as Products.Get does for identity.
	p, err := stripeClient(t, url, restrictedKey, 0).Products.Get("prod_OnMHDH6VBmYlTr", nil)
	mustNoErr(t, err)
	if p.Name != "Switchyard Pro" || !p.Active || p.ID != "prod_OnMHDH6VBmYlTr" {
		t.Errorf("stripe-go product = %+v", p)
	}
	_, err = stripeClient(t, url, restrictedKey, 0).Products.Get("prod_missing", nil)
	var se *stripe.Error
	if !errors.As(err, &se) || se.HTTPStatusCode != 404 || se.Code != stripe.ErrorCodeResourceMissing {
		t.Errorf("stripe-go error for an unknown product = %v, want 404 resource_missing", err)
	}
}

// Products come from product.* events as other objects do: the newest
// version wins whatever the seeding order, and a deleted product is 404
// (Stripe deletes only products without prices) and stays so when an older
// event is seeded after the deletion.
func TestSeedProductFromEvents(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	renamed := product("prod_seeded", "Team (renamed)", false)
	mustNoErr(t, srv.SeedFromEvent(productEvent(t, "evt_prod_updated", "product.updated", 1698249700, renamed)))
	mustNoErr(t, srv.SeedFromEvent(productEvent(t, "evt_prod_created", "product.created", 1698249600, product("prod_seeded", "Team", false))))
	raw, ok := srv.Object("product", "prod_seeded")
	var got struct{ Name string }
	if ok {
		mustNoErr(t, json.Unmarshal(raw, &got))
	}
	if got.Name != "Team (renamed)" {
		t.Fatalf("seeded product name %q (stored: %t), want the newest event's", got.Name, ok)
	}

	mustNoErr(t, srv.SeedFromEvent(productEvent(t, "evt_prod_deleted", "product.deleted", 1698249800, renamed)))
	mustNoErr(t, srv.SeedFromEvent(productEvent(t, "evt_prod_older", "product.updated", 1698249750, renamed)))
	if r := get(t, url+"/v1/products/prod_seeded", testKey); r.status != http.StatusNotFound {
		t.Errorf("deleted product: status %d, want 404: %s", r.status, r.body)
	}
	if _, ok := srv.Object("product", "prod_seeded"); ok || len(srv.Objects("product")) != 0 {
		t.Errorf("a deleted product is still listed by Object/Objects")
	}
}

func TestRequestsAreLogged(t *testing.T) {
	t.Parallel()
	srv, url := newServer(t, stripeapi.Options{})
	mustNoErr(t, srv.PutProduct(product("prod_1", "One", false)))
	get(t, url+"/v1/products/prod_1", testKey)
	get(t, url+"/v1/products/prod_1", "")
	srv.FailNext(1, http.StatusInternalServerError)
	get(t, url+"/v1/products/prod_1", testKey)
	get(t, url+"/v1/events?limit=1", testKey)

	want := []stripeapi.Request{
		{Method: "GET", Path: "/v1/products/prod_1", Status: 200},
		{Method: "GET", Path: "/v1/products/prod_1", Status: 401},
		{Method: "GET", Path: "/v1/products/prod_1", Status: 500},
		{Method: "GET", Path: "/v1/events", Status: 200},
	}
	if got := srv.Requests(); !slices.Equal(got, want) {
		t.Errorf("Requests() = %+v\nwant %+v", got, want)
	}
}
