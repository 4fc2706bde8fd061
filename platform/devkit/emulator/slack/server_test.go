package slack_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/emulator/slack"
)

const hookPath = "/services/T0001/B0001/s3cr3tT0k3n"

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	srv   *slack.Server
	url   string // the webhook URL
	base  string
	clock *clock
}

// newEnv starts the emulator on httptest at hookPath with the fake clock
// at t0; unset options keep their defaults.
func newEnv(t *testing.T, opts slack.Options) *env {
	t.Helper()
	clk := &clock{t: t0}
	if opts.Path == "" {
		opts.Path = hookPath
	}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	srv, err := slack.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &env{srv: srv, url: ts.URL + srv.Path(), base: ts.URL, clock: clk}
}

type response struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, u, contentType, body string) response {
	t.Helper()
	res, err := http.Post(u, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) post(t *testing.T, body string) response {
	t.Helper()
	return post(t, e.url, "application/json", body)
}

func TestAccepted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, contentType, body string
		wantText                string
		wantBlocks, wantAttach  bool
	}{
		{"text", "application/json", `{"text":"DLQ: evt_1 (billing) auth"}`, "DLQ: evt_1 (billing) auth", false, false},
		{"blocks only", "application/json", `{"blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]}`, "", true, false},
		{"text and blocks", "application/json", `{"text":"fallback","blocks":[{"type":"divider"}]}`, "fallback", true, false},
		{"attachments only", "application/json", `{"attachments":[{"color":"#f00","text":"x"}]}`, "", false, true},
		{"form payload", "application/x-www-form-urlencoded", "payload=" + url.QueryEscape(`{"text":"from a form"}`), "from a form", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, slack.Options{})
			r := post(t, e.url, tt.contentType, tt.body)
			if r.status != 200 || r.body != "ok" {
				t.Fatalf("answer %d %q, want 200 ok", r.status, r.body)
			}
			msgs := e.srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages recorded, want 1", len(msgs))
			}
			m := msgs[0]
			if m.Text != tt.wantText || (m.Blocks != nil) != tt.wantBlocks || (m.Attachments != nil) != tt.wantAttach || !m.Time.Equal(t0) {
				t.Errorf("message = %+v", m)
			}
			if !json.Valid(m.Raw) {
				t.Errorf("Raw is not the JSON payload: %s", m.Raw)
			}
		})
	}
}

func TestRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string
	}{
		{"not JSON", http.MethodPost, hookPath, `text=hi`, 400, "invalid_payload"},
		{"JSON array", http.MethodPost, hookPath, `[]`, 400, "invalid_payload"},
		{"text not a string", http.MethodPost, hookPath, `{"text":5}`, 400, "invalid_payload"},
		{"empty object", http.MethodPost, hookPath, `{}`, 400, "no_text"},
		{"blank text, empty blocks", http.MethodPost, hookPath, `{"text":"  ","blocks":[]}`, 400, "no_text"},
		{"blocks not an array", http.MethodPost, hookPath, `{"text":"x","blocks":{"type":"divider"}}`, 400, "invalid_blocks"},
		{"block without type", http.MethodPost, hookPath, `{"blocks":[{"text":"x"}]}`, 400, "invalid_blocks"},
		{"wrong path", http.MethodPost, "/services/T0001/B0001/wrong", `{"text":"x"}`, 404, "no_service"},
		{"GET", http.MethodGet, hookPath, ``, 400, "invalid_payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, slack.Options{})
			req, err := http.NewRequest(tt.method, e.base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.wantStatus || string(b) != tt.wantBody {
				t.Errorf("answer %d %q, want %d %q", res.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
			if n := len(e.srv.Messages()); n != 0 {
				t.Errorf("%d messages recorded for a rejected post", n)
			}
		})
	}
}

func TestChannelArchived(t *testing.T) {
	t.Parallel()
	e := newEnv(t, slack.Options{ChannelArchived: true})
	if r := e.post(t, `{"text":"x"}`); r.status != http.StatusGone || r.body != "channel_is_archived" {
		t.Fatalf("archived: %d %q", r.status, r.body)
	}
	e.srv.SetArchived(false)
	e.clock.Advance(time.Second)
	if r := e.post(t, `{"text":"x"}`); r.status != 200 {
		t.Fatalf("unarchived: %d %q", r.status, r.body)
	}
	if n := len(e.srv.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, slack.Options{})
	if r := e.post(t, `{"text":"1"}`); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	r := e.post(t, `{"text":"2"}`)
	if r.status != http.StatusTooManyRequests || r.body != "rate_limited" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("second in the same second: %d %q Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
	e.clock.Advance(999 * time.Millisecond)
	if r := e.post(t, `{"text":"3"}`); r.status != 429 {
		t.Fatalf("after 999ms: %d, want 429", r.status)
	}
	e.clock.Advance(time.Millisecond)
	if r := e.post(t, `{"text":"4"}`); r.status != 200 {
		t.Fatalf("after 1s: %d, want 200", r.status)
	}
	var texts []string
	for _, m := range e.srv.Messages() {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, ",") != "1,4" {
		t.Errorf("recorded %v, want only the accepted 1 and 4", texts)
	}

	t.Run("burst and off", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, slack.Options{Burst: 3})
		var got []int
		for range 4 {
			got = append(got, e.post(t, `{"text":"x"}`).status)
		}
		if got[0] != 200 || got[2] != 200 || got[3] != 429 {
			t.Errorf("burst of 3: %v", got)
		}
		e.srv.SetRateLimit(0, 1)
		for range 5 {
			if r := e.post(t, `{"text":"x"}`); r.status != 200 {
				t.Fatalf("limit off: %d", r.status)
			}
		}
	})
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status   int
		wantBody string
	}{
		{400, "invalid_payload"}, {403, "invalid_token"}, {404, "no_service"},
		{410, "channel_is_archived"}, {429, "rate_limited"}, {500, "rollup_error"},
		{503, "Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.wantBody, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, slack.Options{RateLimit: -1})
			e.srv.FailNext(2, tt.status)
			for i := range 2 {
				r := e.post(t, `{"text":"x"}`)
				if r.status != tt.status || r.body != tt.wantBody {
					t.Fatalf("post %d: %d %q, want %d %q", i, r.status, r.body, tt.status, tt.wantBody)
				}
				if tt.status == 429 && r.header.Get("Retry-After") != "1" {
					t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
				}
			}
			if r := e.post(t, `{"text":"x"}`); r.status != 200 {
				t.Fatalf("third post: %d", r.status)
			}
			if n := len(e.srv.Messages()); n != 1 {
				t.Errorf("%d messages, want only the third", n)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, slack.Options{})
	e.srv.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, strings.NewReader(`{"text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if res != nil {
			res.Body.Close()
		}
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if n := len(e.srv.Messages()); n != 0 {
		t.Errorf("a post the client gave up on was recorded")
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := slack.New(slack.Options{Path: "services/x"}); err == nil {
		t.Error("relative path accepted")
	}
	srv, err := slack.New(slack.Options{})
	if err != nil {
		t.Fatalf("zero Options: %v", err)
	}
	if srv.Path() != slack.DefaultPath {
		t.Errorf("path %q, want DefaultPath", srv.Path())
	}
}
