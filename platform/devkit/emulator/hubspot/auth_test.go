package hubspot_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	tests := []struct {
		name   string
		header string
	}{
		{"no header", ""},
		{"basic auth", "Basic " + token},
		{"empty bearer", "Bearer "},
		{"unknown token", "Bearer pat-na1-ffffffff-ffff-4fff-bfff-ffffffffffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(http.MethodGet, e.base+"/crm/v3/objects/contacts/1", nil)
			mustNoErr(t, err)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			res, err := http.DefaultClient.Do(req)
			mustNoErr(t, err)
			defer res.Body.Close()
			r := response{status: res.StatusCode, header: res.Header}
			r.body = readAll(t, res)
			got := decodeError(t, r, http.StatusUnauthorized, "INVALID_AUTHENTICATION")
			if !strings.HasPrefix(got.Message, "Authentication credentials not found.") {
				t.Errorf("message = %q", got.Message)
			}
			if r.header.Get("X-HubSpot-RateLimit-Remaining") != "" {
				t.Errorf("401 carries rate-limit headers; an unidentified caller has no budget")
			}
		})
	}
}

func TestSetTokensRevokesAndRotates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	wantStatus(t, e.upsert(t, byEmail("ada@example.com", nil)), http.StatusOK)

	const rotated = "pat-na1-0b7c5d1e-3333-4a2b-9c3d-000000000003"
	e.srv.SetTokens(map[string][]string{rotated: nil})
	decodeError(t, e.upsert(t, byEmail("ada@example.com", nil)), http.StatusUnauthorized, "INVALID_AUTHENTICATION")
	r := e.do(t, http.MethodPost, "/crm/v3/objects/contacts/batch/upsert", rotated,
		map[string]any{"inputs": []in{byEmail("ada@example.com", map[string]any{"firstname": "Ada"})}})
	wantStatus(t, r, http.StatusOK)

	e.srv.SetTokens(map[string][]string{})
	decodeError(t, e.do(t, http.MethodGet, "/crm/v3/properties/contacts/email", rotated, nil), http.StatusUnauthorized, "INVALID_AUTHENTICATION")
}

func TestMissingScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	_, err := e.srv.SeedContact(map[string]string{"email": "ada@example.com"})
	mustNoErr(t, err)
	id := e.srv.Contacts()[0].ID

	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantScope  string // for 403: one of the required scopes named
	}{
		{"upsert", "POST", "/crm/v3/objects/contacts/batch/upsert", map[string]any{"inputs": []in{byEmail("x@example.com", nil)}},
			403, hubspot.ScopeContactsWrite},
		{"create property", "POST", "/crm/v3/properties/contacts", map[string]any{"name": "plan", "label": "Plan",
			"type": "string", "fieldType": "text", "groupName": "contactinformation"}, 403, hubspot.ScopeSchemasWrite},
		{"create group", "POST", "/crm/v3/properties/contacts/groups", map[string]any{"name": "switchyard", "label": "Switchyard"},
			403, hubspot.ScopeSchemasWrite},
		{"read contact", "GET", "/crm/v3/objects/contacts/" + id, nil, 200, ""},
		{"search", "POST", "/crm/v3/objects/contacts/search", map[string]any{}, 200, ""},
		{"read property", "GET", "/crm/v3/properties/contacts/email", nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(t, tt.method, tt.path, readToken, tt.body)
			if tt.wantStatus != http.StatusForbidden {
				wantStatus(t, r, tt.wantStatus)
				return
			}
			got := decodeError(t, r, http.StatusForbidden, "MISSING_SCOPES")
			if len(got.Errors) != 1 || !slices.Contains(got.Errors[0].Context["requiredGranularScopes"], tt.wantScope) {
				t.Errorf("errors = %+v, want requiredGranularScopes with %s", got.Errors, tt.wantScope)
			}
			if got.Links["scopes"] == "" {
				t.Errorf("links = %v, want a scopes link", got.Links)
			}
		})
	}
	if n := len(e.srv.Contacts()); n != 1 {
		t.Errorf("%d contacts after a refused upsert, want 1", n)
	}
}

func TestZeroOptionsAcceptPrivateAppTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{Tokens: map[string][]string{}})
	wantStatus(t, e.do(t, http.MethodGet, "/crm/v3/properties/contacts/email", "pat-eu1-anything", nil), http.StatusOK)
	decodeError(t, e.do(t, http.MethodGet, "/crm/v3/properties/contacts/email", "some-api-key", nil), http.StatusUnauthorized, "INVALID_AUTHENTICATION")
}
