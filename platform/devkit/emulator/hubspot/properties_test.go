package hubspot_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

// propertyJSON is the properties API's property object.
type propertyJSON struct {
	Name           string `json:"name"`
	Label          string `json:"label"`
	Type           string `json:"type"`
	FieldType      string `json:"fieldType"`
	GroupName      string `json:"groupName"`
	HasUniqueValue bool   `json:"hasUniqueValue"`
	HubspotDefined bool   `json:"hubspotDefined"`
	CreatedAt      string `json:"createdAt"`
	Archived       *bool  `json:"archived"`
	Options        []struct {
		Label        string `json:"label"`
		Value        string `json:"value"`
		DisplayOrder int    `json:"displayOrder"`
	} `json:"options"`
	ModificationMetadata *struct {
		Archivable    bool `json:"archivable"`
		ReadOnlyValue bool `json:"readOnlyValue"`
	} `json:"modificationMetadata"`
}

func TestCreatePropertyThenConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	body := map[string]any{
		"name": "plan", "label": "Plan", "type": "enumeration", "fieldType": "select", "groupName": "contactinformation",
		"options": []map[string]any{{"label": "Starter", "value": "starter", "displayOrder": 0}, {"label": "Pro", "value": "pro", "displayOrder": 1}},
	}
	r := e.do(t, http.MethodPost, "/crm/v3/properties/contacts", token, body)
	wantStatus(t, r, http.StatusCreated)
	created := decode[propertyJSON](t, r)
	if created.Name != "plan" || created.Type != "enumeration" || created.FieldType != "select" || len(created.Options) != 2 ||
		created.CreatedAt != "2026-03-02T09:00:00.000Z" || created.Archived == nil || *created.Archived ||
		created.ModificationMetadata == nil || !created.ModificationMetadata.Archivable || created.HubspotDefined {
		t.Errorf("created = %+v", created)
	}

	createdBody := r.body
	r = e.get(t, "/crm/v3/properties/contacts/plan")
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != string(createdBody) {
		t.Errorf("GET = %s\nwant the created property %s", r.body, createdBody)
	}

	r = e.do(t, http.MethodPost, "/crm/v3/properties/contacts", token, body)
	got := decodeError(t, r, http.StatusConflict, "OBJECT_ALREADY_EXISTS")
	if got.Message != "Property named 'plan' already exists." {
		t.Errorf("409 message = %q", got.Message)
	}
	// A default property is taken too.
	r = e.do(t, http.MethodPost, "/crm/v3/properties/contacts", token, map[string]any{
		"name": "email", "label": "E", "type": "string", "fieldType": "text", "groupName": "contactinformation"})
	decodeError(t, r, http.StatusConflict, "OBJECT_ALREADY_EXISTS")

	p, ok := e.srv.Property("plan")
	if !ok || p.Type != "enumeration" || len(p.Options) != 2 || p.Options[1].Value != "pro" {
		t.Errorf("Property(plan) = %+v, %v", p, ok)
	}

	// The new property is usable at once, options enforced.
	wantStatus(t, e.upsert(t, byEmail("ada@example.com", map[string]any{"plan": "pro"})), http.StatusOK)
	wantStatus(t, e.upsert(t, byEmail("ada@example.com", map[string]any{"plan": "enterprise"})), http.StatusMultiStatus)
}

func TestCreatePropertyInvalid(t *testing.T) {
	t.Parallel()
	valid := func(change func(m map[string]any)) map[string]any {
		m := map[string]any{"name": "stripe_id", "label": "Stripe ID", "type": "string", "fieldType": "text", "groupName": "contactinformation"}
		change(m)
		return m
	}
	tests := []struct {
		name    string
		body    any
		wantMsg string
	}{
		{"missing label and group", valid(func(m map[string]any) { delete(m, "label"); delete(m, "groupName") }),
			"not set [label, groupName]"},
		{"upper-case name", valid(func(m map[string]any) { m["name"] = "StripeID" }), "is invalid"},
		{"hs_ prefix", valid(func(m map[string]any) { m["name"] = "hs_stripe" }), "reserved"},
		{"unknown type", valid(func(m map[string]any) { m["type"] = "text" }), `Property type "text" is not valid`},
		{"fieldType does not fit type", valid(func(m map[string]any) { m["type"] = "number" }), `Field type "text" is not valid`},
		{"unique enumeration", valid(func(m map[string]any) {
			m["type"], m["fieldType"], m["hasUniqueValue"] = "enumeration", "select", true
		}), "cannot have unique values"},
		{"options on a string", valid(func(m map[string]any) { m["options"] = []map[string]any{{"label": "A", "value": "a"}} }),
			"only allowed for enumeration"},
		{"duplicate option", valid(func(m map[string]any) {
			m["type"], m["fieldType"] = "enumeration", "radio"
			m["options"] = []map[string]any{{"label": "A", "value": "a"}, {"label": "A2", "value": "a"}}
		}), "appears twice"},
		{"unknown group", valid(func(m map[string]any) { m["groupName"] = "switchyard" }), `Property group "switchyard" does not exist`},
		{"unknown field", valid(func(m map[string]any) { m["unique"] = true }), "Invalid input JSON"},
		{"calculated", valid(func(m map[string]any) { m["calculationFormula"] = "1+1" }), "not emulated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, hubspot.Options{})
			got := decodeError(t, e.do(t, http.MethodPost, "/crm/v3/properties/contacts", token, tt.body),
				http.StatusBadRequest, "VALIDATION_ERROR")
			if !strings.Contains(got.Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", got.Message, tt.wantMsg)
			}
			if _, ok := e.srv.Property("stripe_id"); ok {
				t.Errorf("refused property was stored")
			}
		})
	}
}

func TestGetProperty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})

	got := decodeError(t, e.get(t, "/crm/v3/properties/contacts/stripe_id"), http.StatusNotFound, "OBJECT_NOT_FOUND")
	if !strings.Contains(got.Message, "stripe_id") {
		t.Errorf("404 message = %q", got.Message)
	}

	r := e.get(t, "/crm/v3/properties/contacts/lifecyclestage")
	wantStatus(t, r, http.StatusOK)
	ls := decode[propertyJSON](t, r)
	var values []string
	for _, o := range ls.Options {
		values = append(values, o.Value)
	}
	if !ls.HubspotDefined || ls.Type != "enumeration" ||
		fmt.Sprint(values) != "[subscriber lead marketingqualifiedlead salesqualifiedlead opportunity customer evangelist other]" {
		t.Errorf("lifecyclestage = %+v", ls)
	}

	r = e.get(t, "/crm/v3/properties/contacts")
	wantStatus(t, r, http.StatusOK)
	list := decode[struct {
		Results []propertyJSON `json:"results"`
	}](t, r)
	names := map[string]bool{}
	for _, p := range list.Results {
		names[p.Name] = true
	}
	for _, n := range []string{"email", "firstname", "lastname", "phone", "company", "lifecyclestage", "hs_object_id"} {
		if !names[n] {
			t.Errorf("default property %s missing from the list", n)
		}
	}
}

func TestPropertyGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	group := map[string]any{"name": "switchyard", "label": "Switchyard"}
	wantStatus(t, e.do(t, http.MethodPost, "/crm/v3/properties/contacts/groups", token, group), http.StatusCreated)
	decodeError(t, e.do(t, http.MethodPost, "/crm/v3/properties/contacts/groups", token, group), http.StatusConflict, "OBJECT_ALREADY_EXISTS")
	wantStatus(t, e.do(t, http.MethodPost, "/crm/v3/properties/contacts", token, map[string]any{
		"name": "switchyard_mrr", "label": "MRR", "type": "number", "fieldType": "number", "groupName": "switchyard"}),
		http.StatusCreated)
}

func TestUniquePropertyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	for i := range hubspot.MaxUniqueProperties {
		seedTextProperty(t, e.srv, fmt.Sprintf("key_%d", i), true)
	}
	r := e.do(t, http.MethodPost, "/crm/v3/properties/contacts", token, map[string]any{
		"name": "one_too_many", "label": "X", "type": "number", "fieldType": "number", "groupName": "contactinformation",
		"hasUniqueValue": true})
	decodeError(t, r, http.StatusBadRequest, "VALIDATION_ERROR")
	if err := e.srv.SeedProperty(hubspot.Property{Name: "key_0", Label: "again", Type: "string", FieldType: "text",
		GroupName: "contactinformation"}); err == nil {
		t.Errorf("SeedProperty of a taken name: no error")
	}
}
