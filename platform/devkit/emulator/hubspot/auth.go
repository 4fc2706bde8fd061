package hubspot

import (
	"net/http"
	"strings"
)

// Scopes of a private app that the emulated endpoints check.
const (
	ScopeContactsRead  = "crm.objects.contacts.read"
	ScopeContactsWrite = "crm.objects.contacts.write"
	ScopeSchemasRead   = "crm.schemas.contacts.read"
	ScopeSchemasWrite  = "crm.schemas.contacts.write"
)

// AllScopes returns every scope the emulator checks: what a token listed
// with nil scopes is granted.
func AllScopes() []string {
	return []string{ScopeContactsRead, ScopeContactsWrite, ScopeSchemasRead, ScopeSchemasWrite}
}

// Endpoints need these scopes (any one of a list grants access):
//
//	batch upsert                      crm.objects.contacts.write
//	read and search contacts          crm.objects.contacts.read or .write
//	create properties and groups      crm.schemas.contacts.write
//	read properties                   crm.schemas.contacts.read or .write, or a contacts scope

type scopeSet map[string]bool

// lacks reports whether the set holds none of want.
func (ss scopeSet) lacks(want []string) bool {
	for _, w := range want {
		if ss[w] {
			return false
		}
	}
	return len(want) > 0
}

func makeTokens(tokens map[string][]string) map[string]scopeSet {
	out := make(map[string]scopeSet, len(tokens))
	for tok, scopes := range tokens {
		if scopes == nil {
			scopes = AllScopes()
		}
		ss := make(scopeSet, len(scopes))
		for _, sc := range scopes {
			ss[sc] = true
		}
		out[tok] = ss
	}
	return out
}

// SetTokens replaces the accepted tokens, e.g. to revoke one (its requests
// then get 401) or to rotate to a new one. A nil scope list grants
// AllScopes. Unlike Options.Tokens, an empty map accepts no token at all.
func (s *Server) SetTokens(tokens map[string][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = makeTokens(tokens)
}

// authenticate reads the bearer token and returns its scopes.
func (s *Server) authenticate(r *http.Request) (scopeSet, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		if strings.HasPrefix(token, "pat-") {
			return makeTokens(map[string][]string{token: nil})[token], true
		}
		return nil, false
	}
	ss, ok := s.tokens[token]
	return ss, ok
}

const authMessage = "Authentication credentials not found. This API supports OAuth 2.0 authentication " +
	"and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"

func authError() *apiError {
	return &apiError{Message: authMessage, Category: categoryAuth}
}

// scopeError is HubSpot's 403 for a token without the endpoint's scope.
func scopeError(required []string) *apiError {
	return &apiError{
		Message: "This app hasn't been granted all required scopes to make this call. " +
			"Read more about required scopes here: https://developers.hubspot.com/scopes.",
		Category: categoryScopes,
		Errors: []errorDetail{{
			Message: "One or more of the following scopes are required.",
			Context: map[string][]string{"requiredGranularScopes": append([]string(nil), required...)},
		}},
		Links: map[string]string{"scopes": "https://developers.hubspot.com/scopes"},
	}
}
