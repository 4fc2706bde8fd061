package zendesk_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
)

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{RateLimit: 3})
	for i := range 3 {
		r := e.call(t, http.MethodGet, "/api/v2/tickets.json", nil)
		if r.status != 200 {
			t.Fatalf("request %d within budget: %d", i, r.status)
		}
		if got, want := r.header.Get("X-Rate-Limit-Remaining"), []string{"2", "1", "0"}[i]; got != want || r.header.Get("X-Rate-Limit") != "3" {
			t.Errorf("request %d: X-Rate-Limit %q remaining %q, want 3 and %s", i, r.header.Get("X-Rate-Limit"), got, want)
		}
	}
	// Unauthenticated requests are not the account's and spend nothing.
	if r := e.callAs(t, "", http.MethodGet, "/api/v2/tickets.json", nil); r.status != 401 || r.header.Get("X-Rate-Limit-Remaining") != "0" {
		t.Fatalf("unauthenticated: %d remaining %q", r.status, r.header.Get("X-Rate-Limit-Remaining"))
	}
	r := e.call(t, http.MethodPost, "/api/v2/tickets.json", map[string]any{"ticket": minimal(nil)})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("over budget: %d %s", r.status, r.body)
	}
	// t0 is 15 s into the minute: 45 s until the window resets.
	if got := r.header.Get("Retry-After"); got != "45" {
		t.Errorf("Retry-After = %q, want 45", got)
	}
	if string(r.body) != "Number of allowed API requests per minute exceeded" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("429 body %q (%s), want Zendesk's plain text", r.body, r.header.Get("Content-Type"))
	}
	if r.header.Get("X-Rate-Limit-Remaining") != "0" || r.header.Get("X-Rate-Limit") != "3" {
		t.Errorf("429 rate headers: %v", r.header)
	}
	if n := len(e.srv.Tickets()); n != 0 {
		t.Fatalf("rate-limited create stored %d tickets", n)
	}

	e.clock.Advance(44 * time.Second)
	r = e.call(t, http.MethodGet, "/api/v2/tickets.json", nil)
	if r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("1 s before reset: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	e.clock.Advance(time.Second)
	r = e.call(t, http.MethodPost, "/api/v2/tickets.json", map[string]any{"ticket": minimal(nil)})
	if r.status != 201 || r.header.Get("X-Rate-Limit-Remaining") != "2" || r.header.Get("Ratelimit-Reset") != "60" {
		t.Fatalf("new window: %d remaining %q reset %q", r.status, r.header.Get("X-Rate-Limit-Remaining"), r.header.Get("Ratelimit-Reset"))
	}

	e.srv.SetRateLimit(0)
	for range 5 {
		if r := e.call(t, http.MethodGet, "/api/v2/tickets.json", nil); r.status != 200 || r.header.Get("X-Rate-Limit") != "" {
			t.Fatalf("limit off: %d X-Rate-Limit %q", r.status, r.header.Get("X-Rate-Limit"))
		}
	}
}

func TestDefaultRateLimit(t *testing.T) {
	t.Parallel()
	srv, err := zendesk.New(zendesk.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv}
	ts := newHTTPServer(t, srv)
	e.url = ts
	r := e.callAs(t, basic(zendesk.DefaultEmail, zendesk.DefaultAPIToken), http.MethodGet, "/api/v2/tickets", nil)
	if r.status != 200 || r.header.Get("X-Rate-Limit") != "200" || r.header.Get("X-Rate-Limit-Remaining") != "199" {
		t.Fatalf("defaults: %d %q %q", r.status, r.header.Get("X-Rate-Limit"), r.header.Get("X-Rate-Limit-Remaining"))
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status         int
		wantBody       string // prefix
		wantRetryAfter string
	}{
		{500, "Internal Server Error", ""},
		{502, "Bad Gateway", ""},
		{503, "Service Unavailable", "1"},
		{429, "Number of allowed API requests per minute exceeded", "1"},
		{401, `{"error":"Couldn't authenticate you"}`, ""},
		{403, `{"error":"Forbidden"`, ""},
		{422, `{"error":"RecordInvalid"`, ""},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, zendesk.Options{})
			e.srv.FailNext(2, tt.status)
			for i := range 2 {
				r := e.call(t, http.MethodPost, "/api/v2/tickets", map[string]any{"ticket": minimal(nil)})
				if r.status != tt.status || !strings.HasPrefix(string(r.body), tt.wantBody) || r.header.Get("Retry-After") != tt.wantRetryAfter {
					t.Fatalf("request %d: %d %q Retry-After %q", i, r.status, r.body, r.header.Get("Retry-After"))
				}
			}
			if n := len(e.srv.Tickets()); n != 0 {
				t.Fatalf("failed creates stored %d tickets", n)
			}
			if r := e.call(t, http.MethodPost, "/api/v2/tickets", map[string]any{"ticket": minimal(nil)}); r.status != 201 {
				t.Fatalf("third request: %d, want 201", r.status)
			}
		})
	}

	t.Run("queued in order; unauthenticated requests skip", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, zendesk.Options{})
		e.srv.FailNext(1, 500)
		e.srv.FailNext(1, 429)
		e.srv.SetInjectedRetryAfter(0)
		var got []int
		for _, auth := range []string{"", agentAuth, agentAuth, agentAuth} {
			r := e.callAs(t, auth, http.MethodGet, "/api/v2/tickets", nil)
			got = append(got, r.status)
			if r.status == 429 && r.header.Get("Retry-After") != "0" {
				t.Errorf("Retry-After %q, want 0", r.header.Get("Retry-After"))
			}
		}
		if want := []int{401, 500, 429, 200}; !equalInts(got, want) {
			t.Errorf("statuses %v, want %v", got, want)
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFlakyRate(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) (statuses []int, created int) {
		e := newEnv(t, zendesk.Options{})
		e.srv.FlakyRate(0.3, seed)
		for range 200 {
			r := e.call(t, http.MethodPost, "/api/v2/tickets", map[string]any{"ticket": minimal(nil)})
			statuses = append(statuses, r.status)
			if r.status >= 500 || r.status == 429 {
				continue
			}
			if r.status != 201 {
				t.Fatalf("flaky answered %d: %s", r.status, r.body)
			}
		}
		return statuses, len(e.srv.Tickets())
	}
	a, createdA := run(7)
	b, _ := run(7)
	if !equalInts(a, b) {
		t.Fatal("same seed, different fault sequence")
	}
	counts := map[int]int{}
	for _, st := range a {
		counts[st]++
	}
	failed := 200 - counts[201]
	if failed < 30 || failed > 90 {
		t.Errorf("%d of 200 failed at p=0.3: %v", failed, counts)
	}
	for _, st := range []int{500, 502, 503, 429} {
		if counts[st] == 0 {
			t.Errorf("no %d among %v", st, counts)
		}
	}
	if createdA != counts[201] {
		t.Errorf("%d tickets stored for %d successful creates: a failed create changed state", createdA, counts[201])
	}
}

func TestCrashAfterCreate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		crash zendesk.Crash
	}{
		{"dropped connection", zendesk.CrashDropConnection},
		{"500", zendesk.CrashStatus500},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, zendesk.Options{})
			e.srv.CrashNextCreates(1, tt.crash)
			body := map[string]any{"ticket": minimal(map[string]any{"external_id": "evt_7:dispute"})}

			switch tt.crash {
			case zendesk.CrashDropConnection:
				req, err := http.NewRequest(http.MethodPost, e.url+"/api/v2/tickets", strings.NewReader(mustMarshal(t, body)))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", agentAuth)
				req.Header.Set("Content-Type", "application/json")
				res, err := http.DefaultClient.Do(req)
				if err == nil {
					res.Body.Close()
					t.Fatalf("got HTTP %d, want a transport error", res.StatusCode)
				}
			default:
				if r := e.call(t, http.MethodPost, "/api/v2/tickets", body); r.status != 500 {
					t.Fatalf("status %d, want 500", r.status)
				}
			}

			// The client never heard, but the ticket exists: a lookup by
			// external_id before retrying finds exactly one.
			r := e.call(t, http.MethodGet, "/api/v2/tickets.json?external_id=evt_7%3Adispute", nil)
			found := decode[struct {
				Tickets []ticket `json:"tickets"`
				Count   int      `json:"count"`
			}](t, r, 200)
			if found.Count != 1 || len(e.srv.Tickets()) != 1 || len(e.srv.TicketsByExternalID("evt_7:dispute")) != 1 {
				t.Fatalf("after crash: lookup count %d, %d tickets stored", found.Count, len(e.srv.Tickets()))
			}
			// Only the next create crashed.
			e.create(t, minimal(nil))
			reqs := e.srv.Requests()
			wantStatus := 0
			if tt.crash == zendesk.CrashStatus500 {
				wantStatus = 500
			}
			if reqs[0].Method != http.MethodPost || reqs[0].Status != wantStatus {
				t.Errorf("first request recorded as %s %d, want POST %d", reqs[0].Method, reqs[0].Status, wantStatus)
			}
		})
	}

	t.Run("option hook sees the ticket", func(t *testing.T) {
		t.Parallel()
		var seen []int64
		e := newEnv(t, zendesk.Options{CrashAfterCreate: func(tk zendesk.Ticket) zendesk.Crash {
			seen = append(seen, tk.ID)
			if tk.Priority == "urgent" {
				return zendesk.CrashStatus500
			}
			return zendesk.NoCrash
		}})
		e.create(t, minimal(nil))
		if r := e.call(t, http.MethodPost, "/api/v2/tickets", map[string]any{"ticket": minimal(map[string]any{"priority": "urgent"})}); r.status != 500 {
			t.Fatalf("hooked create: %d", r.status)
		}
		if len(seen) != 2 || len(e.srv.Tickets()) != 2 {
			t.Fatalf("hook saw %v; %d tickets", seen, len(e.srv.Tickets()))
		}
	})
}

func TestLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, zendesk.Options{})
	e.srv.SetLatency(30 * time.Millisecond)
	start := time.Now()
	if r := e.call(t, http.MethodGet, "/api/v2/tickets", nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("answered after %v, before the latency", el)
	}
	e.srv.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/api/v2/tickets", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", agentAuth)
	if res, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if res != nil {
			res.Body.Close()
		}
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	e.srv.SetLatency(0)
}
