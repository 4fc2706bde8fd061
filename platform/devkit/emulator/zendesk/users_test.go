package zendesk_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
)

// self is the part of GET /api/v2/users/me the tests read.
type self struct {
	User struct {
		ID             *int64  `json:"id"`
		URL            *string `json:"url"`
		Name           string  `json:"name"`
		Email          *string `json:"email"`
		Role           string  `json:"role"`
		Active         bool    `json:"active"`
		DefaultGroupID *int64  `json:"default_group_id"`
	} `json:"user"`
}

func TestShowSelf(t *testing.T) {
	t.Parallel()
	admin := zendesk.User{ID: 7001, Name: "Ada Admin", Email: "ada@acme.test", Role: "admin", GroupIDs: []int64{groupBilling}}
	e := newEnv(t, zendesk.Options{Email: "ada@acme.test", APIToken: agentToken,
		Groups: []zendesk.Group{{ID: groupBilling, Name: "Billing"}}, Agents: []zendesk.User{admin}})

	for _, path := range []string{"/api/v2/users/me.json", "/api/v2/users/me"} {
		r := e.callAs(t, basic("ADA@acme.test", agentToken), http.MethodGet, path, nil)
		got := decode[self](t, r, http.StatusOK).User
		if got.ID == nil || *got.ID != 7001 || got.Role != "admin" || got.Email == nil || *got.Email != "ada@acme.test" ||
			!got.Active || got.DefaultGroupID == nil || *got.DefaultGroupID != groupBilling ||
			got.URL == nil || !strings.HasSuffix(*got.URL, "/api/v2/users/7001.json") {
			t.Errorf("GET %s: %+v, want admin 7001 in the billing group", path, got)
		}
	}

	// No credentials at all: Zendesk answers as the anonymous user.
	anon := decode[self](t, e.callAs(t, "", http.MethodGet, "/api/v2/users/me.json", nil), http.StatusOK).User
	if anon.ID != nil || anon.Role != "end-user" || anon.Email != nil {
		t.Errorf("anonymous: %+v, want null id, role end-user", anon)
	}
	// Wrong credentials are refused like anywhere else.
	if r := e.callAs(t, basic("ada@acme.test", "wrong"), http.MethodGet, "/api/v2/users/me.json", nil); r.status != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401: %s", r.status, r.body)
	}
	// The created default agent is an agent.
	d := newEnv(t, zendesk.Options{})
	if got := decode[self](t, d.call(t, http.MethodGet, "/api/v2/users/me.json", nil), http.StatusOK).User; got.Role != "agent" || got.ID == nil {
		t.Errorf("default agent: %+v, want an agent", got)
	}
	if r := d.call(t, http.MethodPut, "/api/v2/users/me.json", map[string]any{"user": map[string]any{}}); r.status != http.StatusNotImplemented {
		t.Errorf("PUT users/me: status %d, want 501", r.status)
	}
	d.srv.SetForbidden(true)
	if r := d.call(t, http.MethodGet, "/api/v2/users/me.json", nil); r.status != http.StatusForbidden {
		t.Errorf("forbidden agent: status %d, want 403", r.status)
	}
}
