package stripeapi

import (
	"net/http"
	"regexp"
	"strings"
)

// Error types Stripe uses in error bodies.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAPI            = "api_error"
)

// apiError is the "error" object of Stripe's error body; fields are in the
// order Stripe writes them.
type apiError struct {
	Code          string `json:"code,omitempty"`
	DocURL        string `json:"doc_url,omitempty"`
	Message       string `json:"message"`
	Param         string `json:"param,omitempty"`
	RequestLogURL string `json:"request_log_url,omitempty"`
	Type          string `json:"type"`
}

const missingKeyMessage = "You did not provide an API key. You need to provide your API key in the " +
	"Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See " +
	"https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."

// requestKey extracts the API key the way Stripe accepts it: a bearer token,
// or the user name of basic auth (the password is ignored).
func requestKey(r *http.Request) (string, bool) {
	if user, _, ok := r.BasicAuth(); ok {
		return user, user != ""
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func (s *Server) authenticate(r *http.Request) (mode, *apiError) {
	key, ok := requestKey(r)
	if !ok {
		return 0, &apiError{Type: typeInvalidRequest, Message: missingKeyMessage}
	}
	if s.keys == nil {
		if strings.HasPrefix(key, "sk_test_") || strings.HasPrefix(key, "rk_test_") {
			return modeTest, nil
		}
	} else if m, found := s.keys[key]; found {
		return m, nil
	}
	return 0, &apiError{Type: typeInvalidRequest, Message: "Invalid API Key provided: " + maskKey(key)}
}

func keyMode(key string) mode {
	if strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_live_") {
		return modeLive
	}
	return modeTest
}

var keyPrefix = regexp.MustCompile(`^[a-z]{2}_(test|live)_`)

// maskKey hides a key as Stripe does in "Invalid API Key provided": the type
// prefix (sk_test_ …) and the last four characters stay, the rest become
// asterisks. Short keys keep only their last four.
func maskKey(key string) string {
	if len(key) <= 4 {
		return strings.Repeat("*", len(key))
	}
	keep := 0
	if p := keyPrefix.FindString(key); p != "" && len(key) >= len(p)+8 {
		keep = len(p)
	}
	return key[:keep] + strings.Repeat("*", len(key)-keep-4) + key[len(key)-4:]
}
