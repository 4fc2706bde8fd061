package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/stripesig"
)

func TestSendSignsAndReportsFailures(t *testing.T) {
	const secret = "whsec_send_test_secret"
	verifier, _ := stripesig.NewVerifier([]string{secret}, 0, nil)
	var ids received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h, err := verifier.Verify(body, r.Header.Get("Stripe-Signature"))
		switch {
		case err != nil:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":"signature"}}`))
		case time.Since(time.Unix(h.Timestamp, 0)) > time.Minute:
			w.WriteHeader(http.StatusBadRequest)
		default:
			ids.add(string(body))
			_, _ = w.Write([]byte(`{"received":true}`))
		}
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(file, testkit.StripeEvent(t, "invoice.paid"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := config.MapEnv(map[string]string{"STRIPE_WEBHOOK_SECRET": secret})
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOK   int64
	}{
		{name: "signed", args: []string{"-n", "3", "-c", "2"}, wantCode: 0, wantOK: 3},
		{name: "fresh ids", args: []string{"-n", "4", "-c", "4", "--new-id"}, wantCode: 0, wantOK: 4},
		{name: "unsigned fails", args: []string{"--unsigned"}, wantCode: 1},
		{name: "stale fails", args: []string{"--stale"}, wantCode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ids.n.Load()
			var out, errOut bytes.Buffer
			args := append([]string{"send", "--webhook-url", srv.URL}, append(tt.args, file)...)
			if code := run(context.Background(), args, env, nil, &out, &errOut); code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, out.String(), errOut.String())
			}
			if got := ids.n.Load() - before; got != tt.wantOK {
				t.Errorf("%d requests verified, want %d", got, tt.wantOK)
			}
		})
	}
	if ids.distinct() != 1+4 {
		t.Errorf("%d distinct bodies accepted, want 5 (3 duplicates of one event + 4 fresh ids)", ids.distinct())
	}
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"send"}, env, nil, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Errorf("send without a file: exit %d, stderr %q; want 2 and usage", code, errOut.String())
	}
}

// received counts verified requests and the distinct bodies among them.
type received struct {
	mu     sync.Mutex
	n      atomic.Int64
	bodies map[string]bool
}

func (r *received) add(body string) {
	r.n.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bodies == nil {
		r.bodies = map[string]bool{}
	}
	r.bodies[body] = true
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}
