package hubspot_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
)

func TestFailNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status       int
		wantJSON     bool
		wantCategory string // JSON bodies
		wantPolicy   string // 429
	}{
		{500, true, "INTERNAL_ERROR", ""},
		{502, false, "", ""},
		{503, false, "", ""},
		{504, false, "", ""},
		{429, true, "", "TEN_SECONDLY_ROLLING"},
		{401, true, "INVALID_AUTHENTICATION", ""},
		{403, true, "MISSING_SCOPES", ""},
		{423, true, "", ""},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, hubspot.Options{TenSecondLimit: hubspot.DefaultTenSecondLimit})
			e.srv.FailNext(2, tt.status)
			for i := range 2 {
				r := e.upsert(t, byEmail("ada@example.com", nil))
				wantStatus(t, r, tt.status)
				ct := r.header.Get("Content-Type")
				if tt.wantJSON != strings.HasPrefix(ct, "application/json") {
					t.Errorf("request %d: Content-Type %q", i, ct)
				}
				if !tt.wantJSON {
					if !strings.Contains(string(r.body), "<html>") {
						t.Errorf("request %d: gateway body %q, want an HTML page", i, r.body)
					}
					continue
				}
				if tt.status == http.StatusTooManyRequests && r.header.Get("X-HubSpot-RateLimit-Remaining") != "0" {
					t.Errorf("injected 429: Remaining %q, want 0", r.header.Get("X-HubSpot-RateLimit-Remaining"))
				}
				got := decode[hsError](t, r)
				if got.Status != "error" || got.Category != tt.wantCategory || got.PolicyName != tt.wantPolicy {
					t.Errorf("request %d: body %s", i, r.body)
				}
			}
			if n := len(e.srv.Contacts()); n != 0 {
				t.Errorf("%d contacts written by failed requests", n)
			}
			wantStatus(t, e.upsert(t, byEmail("ada@example.com", nil)), http.StatusOK)
		})
	}

	t.Run("queued in order, unauthenticated requests skip the queue", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, hubspot.Options{})
		e.srv.FailNext(1, 503)
		e.srv.FailNext(1, 429)
		var got []int
		for _, tok := range []string{"", token, token, token} {
			got = append(got, e.do(t, http.MethodGet, propertyPath, tok, nil).status)
		}
		if want := []int{401, 503, 429, 200}; !slices.Equal(got, want) {
			t.Errorf("statuses %v, want %v", got, want)
		}
	})
}

func TestFlakyRate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	const n, p = 2000, 0.3
	e.srv.FlakyRate(p, 42)
	counts := map[int]int{}
	for range n {
		counts[e.get(t, propertyPath).status]++
	}
	failed := n - counts[http.StatusOK]
	if rate := float64(failed) / n; rate < p-0.05 || rate > p+0.05 {
		t.Errorf("failure rate %.3f over %d requests, want %.2f ± 0.05 (counts %v)", rate, n, p, counts)
	}
	for status, c := range counts {
		switch status {
		case http.StatusOK:
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusTooManyRequests:
			if c < failed/5 {
				t.Errorf("%d appears %d times of %d failures; the mix is uneven", status, c, failed)
			}
		default:
			t.Errorf("unexpected status %d (%d times)", status, c)
		}
	}
	if len(counts) != 4 {
		t.Errorf("statuses %v, want 200 and all of 502, 503, 429", counts)
	}

	e.srv.FlakyRate(0, 0)
	for range 50 {
		wantStatus(t, e.get(t, propertyPath), http.StatusOK)
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})

	e.srv.SetLatency(30 * time.Millisecond)
	start := time.Now()
	wantStatus(t, e.get(t, propertyPath), http.StatusOK)
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("answered after %v, before the 30ms latency", el)
	}

	// A client that gives up sees its deadline, and the server lets go.
	e.srv.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+propertyPath, nil)
	mustNoErr(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if res, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if res != nil {
			res.Body.Close()
		}
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	e.srv.SetLatency(0)
	wantStatus(t, e.get(t, propertyPath), http.StatusOK)
}

func TestRequestsCountsByEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, hubspot.Options{})
	e.srv.FailNext(1, 503)
	e.upsert(t, byEmail("ada@example.com", nil)) // 503
	e.upsert(t, byEmail("ada@example.com", nil))
	e.do(t, http.MethodPost, "/crm/v3/objects/contacts/batch/upsert", "", map[string]any{}) // 401
	e.get(t, "/crm/v3/objects/contacts/ada@example.com?idProperty=email")
	e.search(t, map[string]any{})
	e.get(t, propertyPath)
	e.do(t, http.MethodPost, "/crm/v3/properties/contacts", token, map[string]any{})
	r := e.do(t, http.MethodPatch, "/crm/v3/objects/contacts/1", token, map[string]any{})
	decodeError(t, r, http.StatusNotImplemented, "NOT_IMPLEMENTED")
	decodeError(t, e.get(t, "/crm/v3/objects/companies/1"), http.StatusNotFound, "OBJECT_NOT_FOUND")

	got := e.srv.Requests()
	want := map[string]int{
		hubspot.EndpointBatchUpsert:           3,
		hubspot.EndpointGetContact:            1,
		hubspot.EndpointSearch:                1,
		hubspot.EndpointGetProperty:           1,
		hubspot.EndpointCreateProperty:        1,
		"PATCH /crm/v3/objects/contacts/{id}": 1,
		"GET /crm/v3/objects/companies/1":     1,
	}
	if len(got) != len(want) {
		t.Errorf("Requests() = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Requests()[%q] = %d, want %d", k, got[k], v)
		}
	}
}
