package hubspot

import (
	"net/http"
	"slices"
	"strings"
)

// EndpointTokenInfo is HubSpot's private-app token introspection, as
// Requests counts it.
const EndpointTokenInfo = "POST /oauth/v2/private-apps/get/access-token-info"

// The ids the token-info endpoint reports besides the portal's: one
// private app, installed by one user, in every emulated account.
const (
	TokenInfoAppID  = 3000001
	TokenInfoUserID = 4000001
)

// tokenInfo answers POST /oauth/v2/private-apps/get/access-token-info
// {"tokenKey": "<token>"}: which account, app and user the private-app
// token belongs to and the scopes it holds. HubSpot asks for no scope
// here, and reads the token from the body (the Authorization header is
// optional), so a token of any scope may introspect itself.
func (s *Server) tokenInfo(c *call, r *http.Request, _ string) {
	var body struct {
		TokenKey string `json:"tokenKey"`
	}
	if !c.decode(r, &body) {
		return
	}
	tok := strings.TrimSpace(body.TokenKey)
	if tok == "" {
		c.fail(http.StatusBadRequest, validationError("tokenKey is required"))
		return
	}
	s.mu.Lock()
	var scopes scopeSet
	ok := false
	if s.tokens == nil {
		if ok = strings.HasPrefix(tok, "pat-"); ok {
			scopes = makeTokens(map[string][]string{tok: nil})[tok]
		}
	} else {
		scopes, ok = s.tokens[tok]
	}
	s.mu.Unlock()
	if !ok {
		c.fail(http.StatusUnauthorized, authError())
		return
	}
	list := make([]string, 0, len(scopes))
	for sc := range scopes {
		list = append(list, sc)
	}
	slices.Sort(list)
	c.json(http.StatusOK, struct {
		UserID int64    `json:"userId"`
		HubID  int64    `json:"hubId"`
		AppID  int64    `json:"appId"`
		Scopes []string `json:"scopes"`
	}{TokenInfoUserID, s.portalID, TokenInfoAppID, list})
}
