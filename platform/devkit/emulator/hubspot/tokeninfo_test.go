package hubspot_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

// tokenInfo is the token-info endpoint's answer.
type tokenInfo struct {
	UserID int64    `json:"userId"`
	HubID  int64    `json:"hubId"`
	AppID  int64    `json:"appId"`
	Scopes []string `json:"scopes"`
}

const tokenInfoPath = "/oauth/v2/private-apps/get/access-token-info"

func TestTokenInfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{PortalID: 4242})
	tests := []struct {
		name       string
		header     string // Authorization bearer token; none when empty
		body       any
		wantStatus int
		wantScopes []string
	}{
		{name: "a token with every scope, no header", body: map[string]string{"tokenKey": token},
			wantStatus: http.StatusOK, wantScopes: []string{hubspot.ScopeContactsRead, hubspot.ScopeContactsWrite, hubspot.ScopeSchemasRead, hubspot.ScopeSchemasWrite}},
		{name: "a read-only token asks about itself", header: readToken, body: map[string]string{"tokenKey": readToken},
			wantStatus: http.StatusOK, wantScopes: []string{hubspot.ScopeContactsRead, hubspot.ScopeSchemasRead}},
		{name: "an unknown token", body: map[string]string{"tokenKey": "pat-na1-unknown"}, wantStatus: http.StatusUnauthorized},
		{name: "no tokenKey", header: token, body: map[string]string{}, wantStatus: http.StatusBadRequest},
		{name: "not JSON", body: "tokenKey=" + token, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.do(t, http.MethodPost, tokenInfoPath, tt.header, tt.body)
			wantStatus(t, r, tt.wantStatus)
			if tt.wantStatus != http.StatusOK {
				if got := decode[hsError](t, r); got.Status != "error" || got.CorrelationID == "" {
					t.Errorf("error body %+v, want HubSpot's shape", got)
				}
				return
			}
			got := decode[tokenInfo](t, r)
			if got.HubID != 4242 || got.AppID != hubspot.TokenInfoAppID || got.UserID != hubspot.TokenInfoUserID || !slices.Equal(got.Scopes, tt.wantScopes) {
				t.Errorf("got %+v, want hub 4242 and scopes %v", got, tt.wantScopes)
			}
		})
	}
}

// TestTokenInfoAnyPrivateAppToken: with no tokens configured, every pat-
// token holds every scope, and says so.
func TestTokenInfoAnyPrivateAppToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{Tokens: map[string][]string{}})
	r := e.do(t, http.MethodPost, tokenInfoPath, "", map[string]string{"tokenKey": "pat-eu1-anything"})
	wantStatus(t, r, http.StatusOK)
	if got := decode[tokenInfo](t, r); len(got.Scopes) != len(hubspot.AllScopes()) || got.HubID != hubspot.DefaultPortalID {
		t.Errorf("got %+v, want every scope in the default portal", got)
	}
	if n := e.srv.Requests()[hubspot.EndpointTokenInfo]; n != 1 {
		t.Errorf("Requests counts %d token-info calls, want 1", n)
	}
}
