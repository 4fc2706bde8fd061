package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPath is the webhook path when Options leaves it empty, shaped like
// Slack's /services/<team>/<bot>/<secret>.
const DefaultPath = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

// DefaultRateLimit is Slack's documented posting rate for incoming webhooks:
// one message per second.
const DefaultRateLimit = 1

const maxBody = 1 << 20

// Options configures a Server. The zero value is usable: DefaultPath, the
// real clock, one message per second with no burst, channel not archived.
type Options struct {
	// Path is the one webhook path that exists (the URL's secret part);
	// every other path answers 404 no_service. It must start with "/".
	Path string
	// Now is the clock for message times and the rate limit. Default
	// time.Now.
	Now func() time.Time
	// RateLimit is messages per second: 0 means DefaultRateLimit, negative
	// turns the limit off.
	RateLimit int
	// Burst is how many messages may go at once before the rate applies
	// (default 1). Slack tolerates short bursts without promising a size.
	Burst int
	// ChannelArchived makes every post answer 410 channel_is_archived.
	ChannelArchived bool
}

// Message is one accepted post.
type Message struct {
	Time time.Time
	Text string
	// Blocks and Attachments are the raw JSON arrays as posted; nil when
	// absent.
	Blocks      json.RawMessage
	Attachments json.RawMessage
	// Raw is the whole JSON payload as posted (for form posts, the payload
	// field).
	Raw []byte
}

// Server is the emulator: an http.Handler for one incoming webhook. All
// methods are safe for concurrent use.
type Server struct {
	now  func() time.Time
	path string

	mu       sync.Mutex
	messages []Message
	archived bool
	failures []int
	latency  time.Duration
	rate     int
	burst    int
	tat      time.Time // GCRA theoretical arrival time
}

var _ http.Handler = (*Server)(nil)

// New returns a Server for the webhook at opts.Path.
func New(opts Options) (*Server, error) {
	s := &Server{now: opts.Now, path: opts.Path, archived: opts.ChannelArchived}
	if s.now == nil {
		s.now = time.Now
	}
	if s.path == "" {
		s.path = DefaultPath
	}
	if !strings.HasPrefix(s.path, "/") {
		return nil, fmt.Errorf("slack: path %q does not start with /", s.path)
	}
	switch {
	case opts.RateLimit == 0:
		s.rate = DefaultRateLimit
	case opts.RateLimit > 0:
		s.rate = opts.RateLimit
	}
	s.burst = max(opts.Burst, 1)
	return s, nil
}

// Path returns the webhook path; the webhook URL is the server's base URL
// plus Path.
func (s *Server) Path() string { return s.path }

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		m.Blocks = bytes.Clone(m.Blocks)
		m.Attachments = bytes.Clone(m.Attachments)
		m.Raw = bytes.Clone(m.Raw)
		out[i] = m
	}
	return out
}

// SetArchived makes posts answer 410 channel_is_archived (true) or not.
func (s *Server) SetArchived(archived bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archived = archived
}

// SetRateLimit sets messages per second (0 or negative turns the limit
// off) and the burst (at least 1), and forgets past posts.
func (s *Server) SetRateLimit(perSecond, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate = max(perSecond, 0)
	s.burst = max(burst, 1)
	s.tat = time.Time{}
}

// FailNext makes the next n posts to the webhook path answer status with
// Slack's body for it (400 invalid_payload, 403 invalid_token, 404
// no_service, 410 channel_is_archived, 429 rate_limited with Retry-After: 1,
// 500 rollup_error, other statuses their reason phrase). Failed posts are
// not recorded. Calls queue up in order.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, status)
	}
}

// SetLatency delays every response by d (0 turns it off). The wait ends
// early when the client goes away.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ServeHTTP answers one webhook post.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if !s.wait(r.Context()) {
		return // the client is gone
	}
	if r.URL.Path != s.path {
		answer(w, http.StatusNotFound, "no_service")
		return
	}
	if err != nil || r.Method != http.MethodPost {
		answer(w, http.StatusBadRequest, "invalid_payload")
		return
	}
	now := s.now()
	if st, ok := s.takeFailure(); ok {
		injected(w, st)
		return
	}
	if wait, limited := s.throttle(now); limited {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		answer(w, http.StatusTooManyRequests, "rate_limited")
		return
	}
	s.mu.Lock()
	archived := s.archived
	s.mu.Unlock()
	if archived {
		answer(w, http.StatusGone, "channel_is_archived")
		return
	}
	msg, code := parse(r.Header.Get("Content-Type"), body)
	if code != "" {
		answer(w, http.StatusBadRequest, code)
		return
	}
	msg.Time = now
	s.mu.Lock()
	s.messages = append(s.messages, msg) // before "ok" goes out
	s.mu.Unlock()
	answer(w, http.StatusOK, "ok")
}

// parse reads a JSON body, or a form body with the JSON in its payload
// field (which incoming webhooks also take). A non-empty code is Slack's
// error for the payload.
func parse(contentType string, body []byte) (Message, string) {
	raw := body
	if strings.HasPrefix(contentType, "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			return Message{}, "invalid_payload"
		}
		raw = []byte(form.Get("payload"))
	}
	var p struct {
		Text        *json.RawMessage `json:"text"`
		Blocks      json.RawMessage  `json:"blocks"`
		Attachments json.RawMessage  `json:"attachments"`
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return Message{}, "invalid_payload"
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return Message{}, "invalid_payload"
	}
	m := Message{Raw: bytes.Clone(raw)}
	if p.Text != nil && !isNull(*p.Text) {
		if err := json.Unmarshal(*p.Text, &m.Text); err != nil {
			return Message{}, "invalid_payload"
		}
	}
	var blocks []map[string]json.RawMessage
	if len(p.Blocks) > 0 && !isNull(p.Blocks) {
		if err := json.Unmarshal(p.Blocks, &blocks); err != nil {
			return Message{}, "invalid_blocks"
		}
		for _, b := range blocks {
			var typ string
			if err := json.Unmarshal(b["type"], &typ); err != nil || typ == "" {
				return Message{}, "invalid_blocks"
			}
		}
		m.Blocks = bytes.Clone(p.Blocks)
	}
	var attachments []json.RawMessage
	if len(p.Attachments) > 0 && !isNull(p.Attachments) {
		if err := json.Unmarshal(p.Attachments, &attachments); err != nil {
			return Message{}, "invalid_attachments"
		}
		m.Attachments = bytes.Clone(p.Attachments)
	}
	if strings.TrimSpace(m.Text) == "" && len(blocks) == 0 && len(attachments) == 0 {
		return Message{}, "no_text"
	}
	return m, ""
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// answer writes Slack's plain-text webhook answer.
func answer(w http.ResponseWriter, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

var injectedBodies = map[int]string{
	http.StatusBadRequest:          "invalid_payload",
	http.StatusForbidden:           "invalid_token",
	http.StatusNotFound:            "no_service",
	http.StatusGone:                "channel_is_archived",
	http.StatusTooManyRequests:     "rate_limited",
	http.StatusInternalServerError: "rollup_error",
}

func injected(w http.ResponseWriter, status int) {
	body, ok := injectedBodies[status]
	if !ok {
		body = http.StatusText(status)
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	answer(w, status, body)
}

func (s *Server) takeFailure() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) == 0 {
		return 0, false
	}
	st := s.failures[0]
	s.failures = s.failures[1:]
	return st, true
}

// throttle is a GCRA token bucket: each post costs time.Second/rate and up
// to burst posts may be ahead of schedule. When limited it reports how long
// until the next post would pass.
func (s *Server) throttle(now time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rate <= 0 {
		return 0, false
	}
	interval := time.Second / time.Duration(s.rate)
	allowAhead := time.Duration(s.burst-1) * interval
	if s.tat.Before(now) {
		s.tat = now
	}
	if ahead := s.tat.Sub(now); ahead > allowAhead {
		return ahead - allowAhead, true
	}
	s.tat = s.tat.Add(interval)
	return 0, false
}

// wait sleeps the configured latency; false means the request's context
// ended.
func (s *Server) wait(ctx context.Context) bool {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
