package hubspot

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"
)

// faults is the fault-injection state; guarded by Server.mu.
type faults struct {
	queue   []int
	latency time.Duration
	flakyP  float64
	flaky   *rand.Rand
}

// flakyStatuses are what FlakyRate answers, with equal chance.
var flakyStatuses = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusTooManyRequests}

// FailNext makes the next n authenticated requests answer status, with the
// body HubSpot (or the edge in front of it) sends for it: 429 the
// TEN_SECONDLY_ROLLING body; 401 and 403 the auth and scope bodies; 502,
// 503, 504 and 52x an HTML gateway page; other statuses a JSON error.
// Calls queue up in order. Injected failures take no rate-limit budget.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults.queue = append(s.faults.queue, status)
	}
}

// SetLatency delays every response by d of real time (0 turns it off). The
// wait ends early when the client goes away.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency = d
}

// FlakyRate makes each authenticated request fail with probability p
// (0 turns it off), answering 502, 503 or 429 with equal chance. The draws
// come from a generator seeded with seed, so a sequential run is
// reproducible. FailNext's queue is served first.
func (s *Server) FlakyRate(p float64, seed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.flakyP = min(max(p, 0), 1)
	s.faults.flaky = rand.New(rand.NewPCG(uint64(seed), 0x5eed))
}

func (s *Server) takeFault() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	if len(f.queue) > 0 {
		st := f.queue[0]
		f.queue = f.queue[1:]
		return st, true
	}
	if f.flakyP > 0 && f.flaky.Float64() < f.flakyP {
		return flakyStatuses[f.flaky.IntN(len(flakyStatuses))], true
	}
	return 0, false
}

func (s *Server) injected(c *call, status int) {
	switch {
	case status == http.StatusTooManyRequests:
		s.mu.Lock()
		s.limits.setHeaders(c.w.Header(), c.now, PolicyTenSecondlyRolling)
		s.mu.Unlock()
		s.rateLimited(c, &refusal{PolicyTenSecondlyRolling, time.Second})
	case status == http.StatusUnauthorized:
		c.fail(status, authError())
	case status == http.StatusForbidden:
		c.fail(status, scopeError([]string{ScopeContactsWrite}))
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable ||
		status == http.StatusGatewayTimeout || (status >= 520 && status <= 527):
		gatewayPage(c, status)
	case status >= 500:
		c.fail(status, &apiError{Message: "internal error", Category: "INTERNAL_ERROR"})
	default:
		c.fail(status, &apiError{Message: fmt.Sprintf("hubspot emulator: injected failure (HTTP %d)", status)})
	}
}

// gatewayPage answers the way the edge in front of HubSpot does when the
// API is overloaded or down: an HTML page, not JSON, so a client must not
// assume every error body parses.
func gatewayPage(c *call, status int) {
	text := http.StatusText(status)
	if text == "" {
		text = "Origin Error"
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/html")
	c.w.WriteHeader(status)
	_, _ = fmt.Fprintf(c.w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n"+
		"<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n", status, text, status, text)
}
