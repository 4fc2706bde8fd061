package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/services/projector/client"
)

// The client presents the bearer token, sends JSON bodies, decodes a 200
// and turns any other answer into an error carrying the API's message.
func TestClientCallsTheStatusAPI(t *testing.T) {
	t.Parallel()
	var gotAuth, gotBody, gotType, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotType, gotPath = r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.URL.RequestURI()
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		switch r.URL.Path {
		case "/v1/dead-letters/7/discard":
			_, _ = io.WriteString(w, `{"seq": 7, "action": "discard", "by": "ops", "result": "discarded"}`)
		default:
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error": {"code": "forbidden", "message": "this token lacks the operate scope"}}`)
		}
	}))
	defer srv.Close()
	c := client.New(srv.URL+"/", "tok3n", 0)

	res, err := c.Discard(context.Background(), 7, "customer deleted")
	if err != nil || res.Result != "discarded" || res.By != "ops" {
		t.Fatalf("Discard = %+v, %v", res, err)
	}
	if gotAuth != "Bearer tok3n" || gotType != "application/json" || gotBody != `{"note":"customer deleted"}` {
		t.Errorf("request: auth %q, type %q, body %q", gotAuth, gotType, gotBody)
	}

	_, err = c.Rebuild(context.Background())
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden: this token lacks the operate scope") {
		t.Errorf("Rebuild with a read token: %v, want the API's message", err)
	}
	if gotPath != "/v1/rebuild" || gotBody != "" {
		t.Errorf("Rebuild sent %q with body %q", gotPath, gotBody)
	}

	if _, err := c.FindCustomers(context.Background(), client.ByEmail, "a+b@example.com"); err == nil || gotPath != "/v1/customers?email=a%2Bb%40example.com" {
		t.Errorf("FindCustomers asked %q (%v)", gotPath, err)
	}
}

// A status API that cannot be reached is an error wrapping *url.Error, so
// callers can say what to do instead.
func TestClientUnreachableIsURLError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	_, err := client.New(base, "t", 0).Status(context.Background())
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("Status of a closed server: %v, want a *url.Error", err)
	}
}
