package hubspot_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

func TestGetContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	seedTextProperty(t, e.srv, "switchyard_customer_id", true)
	seedTextProperty(t, e.srv, "plan", false)
	ada, err := e.srv.SeedContact(map[string]string{"email": "Ada@Example.com", "firstname": "Ada",
		"switchyard_customer_id": "cust_1", "plan": "pro"})
	mustNoErr(t, err)

	tests := []struct {
		name      string
		path      string
		wantProps map[string]string // "<null>" for a null value
	}{
		{"by record id, default properties", "/crm/v3/objects/contacts/" + ada.ID, map[string]string{
			"email": "ada@example.com", "firstname": "Ada", "lastname": "<null>", "hs_object_id": ada.ID,
			"createdate": "2026-03-02T09:00:00.000Z", "lastmodifieddate": "2026-03-02T09:00:00.000Z"}},
		{"by email, any case", "/crm/v3/objects/contacts/" + url.PathEscape("ADA@example.com") + "?idProperty=email&properties=plan",
			map[string]string{"plan": "pro", "hs_object_id": ada.ID, "createdate": "2026-03-02T09:00:00.000Z",
				"lastmodifieddate": "2026-03-02T09:00:00.000Z"}},
		{"by unique property, repeated and comma-separated properties",
			"/crm/v3/objects/contacts/cust_1?idProperty=switchyard_customer_id&properties=email,lifecyclestage&properties=no_such_prop",
			map[string]string{"email": "ada@example.com", "lifecyclestage": "<null>", "hs_object_id": ada.ID,
				"createdate": "2026-03-02T09:00:00.000Z", "lastmodifieddate": "2026-03-02T09:00:00.000Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.get(t, tt.path)
			wantStatus(t, r, http.StatusOK)
			o := decode[object](t, r)
			got := map[string]string{}
			for k := range o.Properties {
				got[k] = o.prop(k)
			}
			if o.ID != ada.ID || fmt.Sprint(got) != fmt.Sprint(tt.wantProps) || o.Archived == nil || *o.Archived || o.New != nil {
				t.Errorf("got id %s %v archived %v new %v\nwant id %s %v", o.ID, got, o.Archived, o.New, ada.ID, tt.wantProps)
			}
		})
	}

	missing := []struct {
		name string
		path string
	}{
		{"unknown id", "/crm/v3/objects/contacts/1"},
		{"an email without idProperty", "/crm/v3/objects/contacts/ada@example.com"},
		{"unknown email", "/crm/v3/objects/contacts/bob@example.com?idProperty=email"},
		{"archived", "/crm/v3/objects/contacts/" + ada.ID + "?archived=true"},
	}
	for _, tt := range missing {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := decodeError(t, e.get(t, tt.path), http.StatusNotFound, "OBJECT_NOT_FOUND")
			if got.Message != "Object not found.  objectId are usually numeric." {
				t.Errorf("message = %q", got.Message)
			}
		})
	}
	t.Run("non-unique idProperty", func(t *testing.T) {
		t.Parallel()
		decodeError(t, e.get(t, "/crm/v3/objects/contacts/pro?idProperty=plan"), http.StatusBadRequest, "VALIDATION_ERROR")
	})
}

// searchBody builds a search request with one EQ filter (none when
// property is empty).
func searchBody(property, value string, limit int, after string) map[string]any {
	b := map[string]any{"limit": limit, "properties": []string{"email", "lifecyclestage"}}
	if property != "" {
		b["filterGroups"] = []map[string]any{{"filters": []map[string]any{{"propertyName": property, "operator": "EQ", "value": value}}}}
	}
	if after != "" {
		b["after"] = after
	}
	return b
}

type searchResult struct {
	Total   int      `json:"total"`
	Results []object `json:"results"`
	Paging  *struct {
		Next struct {
			After string `json:"after"`
			Link  string `json:"link"`
		} `json:"next"`
	} `json:"paging"`
}

func (e *env) search(t *testing.T, body any) searchResult {
	t.Helper()
	r := e.do(t, http.MethodPost, "/crm/v3/objects/contacts/search", token, body)
	wantStatus(t, r, http.StatusOK)
	return decode[searchResult](t, r)
}

func TestSearchPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	var customers []string
	for i := range 25 {
		stage := "lead"
		if i%5 != 0 {
			stage = "customer"
		}
		c, err := e.srv.SeedContact(map[string]string{"email": fmt.Sprintf("user%02d@example.com", i), "lifecyclestage": stage})
		mustNoErr(t, err)
		if stage == "customer" {
			customers = append(customers, c.ID)
		}
	}

	var got []string
	after := ""
	for page := 0; ; page++ {
		res := e.search(t, searchBody("lifecyclestage", "customer", 8, after))
		if res.Total != len(customers) {
			t.Fatalf("page %d: total %d, want %d", page, res.Total, len(customers))
		}
		for _, o := range res.Results {
			if o.prop("lifecyclestage") != "customer" || o.prop("hs_object_id") != o.ID {
				t.Errorf("result %+v", o)
			}
			got = append(got, o.ID)
		}
		if res.Paging == nil {
			break
		}
		if res.Paging.Next.After == "" || res.Paging.Next.Link != "?after="+res.Paging.Next.After {
			t.Fatalf("paging = %+v", res.Paging)
		}
		after = res.Paging.Next.After
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, customers) {
		t.Errorf("paged ids %v\nwant %v (each once, in id order)", got, customers)
	}
}

func TestSearchFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	seedNumberProperty(t, e.srv, "mrr", false)
	for _, p := range []map[string]string{
		{"email": "ada@example.com", "lifecyclestage": "customer", "mrr": "4900"},
		{"email": "bob@example.com", "lifecyclestage": "customer", "mrr": "900"},
		{"email": "cy@example.com", "lifecyclestage": "lead"},
	} {
		_, err := e.srv.SeedContact(p)
		mustNoErr(t, err)
	}
	filter := func(prop, op string, value any) map[string]any {
		f := map[string]any{"propertyName": prop, "operator": op}
		if vs, ok := value.([]string); ok {
			f["values"] = vs
		} else if value != nil {
			f["value"] = value
		}
		return f
	}
	group := func(filters ...map[string]any) map[string]any { return map[string]any{"filters": filters} }
	tests := []struct {
		name   string
		groups []map[string]any
		want   []string
	}{
		{"EQ on email ignores case", []map[string]any{group(filter("email", "EQ", "ADA@example.com"))}, []string{"ada"}},
		{"NEQ", []map[string]any{group(filter("lifecyclestage", "NEQ", "customer"))}, []string{"cy"}},
		{"GT on a number is numeric", []map[string]any{group(filter("mrr", "GT", 1000))}, []string{"ada"}},
		{"HAS_PROPERTY", []map[string]any{group(filter("mrr", "HAS_PROPERTY", nil))}, []string{"ada", "bob"}},
		{"NOT_HAS_PROPERTY", []map[string]any{group(filter("mrr", "NOT_HAS_PROPERTY", nil))}, []string{"cy"}},
		{"IN", []map[string]any{group(filter("email", "IN", []string{"bob@example.com", "cy@example.com"}))}, []string{"bob", "cy"}},
		{"filters in a group are ANDed", []map[string]any{group(filter("lifecyclestage", "EQ", "customer"),
			filter("mrr", "LT", "1000"))}, []string{"bob"}},
		{"groups are ORed", []map[string]any{group(filter("email", "EQ", "ada@example.com")),
			group(filter("lifecyclestage", "EQ", "lead"))}, []string{"ada", "cy"}},
		{"no groups: everything", nil, []string{"ada", "bob", "cy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := map[string]any{"properties": []string{"email"}}
			if tt.groups != nil {
				body["filterGroups"] = tt.groups
			}
			res := e.search(t, body)
			var got []string
			for _, o := range res.Results {
				got = append(got, o.prop("email")[:len(o.prop("email"))-len("@example.com")])
			}
			if !slices.Equal(got, tt.want) || res.Total != len(tt.want) {
				t.Errorf("got %v (total %d), want %v", got, res.Total, tt.want)
			}
		})
	}
	t.Run("sort descending", func(t *testing.T) {
		t.Parallel()
		res := e.search(t, map[string]any{"properties": []string{"email"},
			"sorts": []map[string]any{{"propertyName": "mrr", "direction": "DESCENDING"}}})
		var got []string
		for _, o := range res.Results {
			got = append(got, o.prop("email"))
		}
		if want := []string{"ada@example.com", "bob@example.com", "cy@example.com"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v (unset last)", got, want)
		}
	})
}

func TestSearchInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	tooManyGroups := make([]map[string]any, 6)
	for i := range tooManyGroups {
		tooManyGroups[i] = map[string]any{"filters": []map[string]any{{"propertyName": "email", "operator": "HAS_PROPERTY"}}}
	}
	tests := []struct {
		name string
		body any
	}{
		{"limit over 200", map[string]any{"limit": 201}},
		{"beyond 10,000 results", map[string]any{"limit": 100, "after": "9950"}},
		{"after not a number", map[string]any{"after": "abc"}},
		{"six filter groups", map[string]any{"filterGroups": tooManyGroups}},
		{"unknown operator", map[string]any{"filterGroups": []map[string]any{{"filters": []map[string]any{
			{"propertyName": "email", "operator": "LIKE", "value": "ada"}}}}}},
		{"token operator not emulated", map[string]any{"filterGroups": []map[string]any{{"filters": []map[string]any{
			{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@example.com"}}}}}},
		{"unknown property", searchBody("favourite_colour", "teal", 10, "")},
		{"full-text query", map[string]any{"query": "ada"}},
		{"unknown field", map[string]any{"filter_groups": []any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			decodeError(t, e.do(t, http.MethodPost, "/crm/v3/objects/contacts/search", token, tt.body),
				http.StatusBadRequest, "VALIDATION_ERROR")
		})
	}
}

func TestSearchIndexDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{SearchIndexDelay: 5 * time.Second})
	wantStatus(t, e.upsert(t, byEmail("ada@example.com", nil)), http.StatusOK)

	if res := e.search(t, searchBody("email", "ada@example.com", 10, "")); res.Total != 0 {
		t.Errorf("a contact created now is found at once (total %d); the index lags %v", res.Total, 5*time.Second)
	}
	// A read by email sees it at once, like HubSpot's.
	wantStatus(t, e.get(t, "/crm/v3/objects/contacts/ada@example.com?idProperty=email"), http.StatusOK)

	e.clk.Advance(5 * time.Second)
	if res := e.search(t, searchBody("email", "ada@example.com", 10, "")); res.Total != 1 {
		t.Errorf("after the delay: total %d, want 1", res.Total)
	}
}
