package hubspot

import (
	"net/http"
	"strconv"
	"time"
)

// Policy names HubSpot puts in the policyName of a 429.
const (
	PolicyTenSecondlyRolling = "TEN_SECONDLY_ROLLING"
	PolicySecondly           = "SECONDLY"
	PolicyDaily              = "DAILY"
)

// limiter keeps the account's request log for the rolling windows and the
// day's count. Only admitted requests count: a 429 does not use up budget.
type limiter struct {
	tenSecond, perSecond, search, daily int // ≤ 0: no limit
	loc                                 *time.Location

	window   []time.Time // admitted requests in the last RateLimitInterval
	searches []time.Time // admitted searches in the last second
	day      time.Time   // start of the day dayCount belongs to
	dayCount int
}

func newLimiter(opts Options) limiter {
	orDefault := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	l := limiter{
		tenSecond: orDefault(opts.TenSecondLimit, DefaultTenSecondLimit),
		perSecond: max(opts.PerSecondLimit, 0),
		search:    orDefault(opts.SearchPerSecondLimit, DefaultSearchPerSecondLimit),
		daily:     orDefault(opts.DailyLimit, DefaultDailyLimit),
		loc:       opts.Location,
	}
	if l.loc == nil {
		l.loc = time.UTC
	}
	return l
}

// refusal says which limit refused a request and how long until it would
// admit one.
type refusal struct {
	policy string
	wait   time.Duration
}

// admit counts the request if every limit allows it; otherwise it says
// which limit is hit first, checked daily, ten-secondly, secondly.
func (l *limiter) admit(now time.Time, search bool) *refusal {
	l.prune(now)
	if l.daily > 0 && l.dayCount >= l.daily {
		y, m, d := now.In(l.loc).Date()
		return &refusal{PolicyDaily, time.Date(y, m, d+1, 0, 0, 0, 0, l.loc).Sub(now)}
	}
	if l.tenSecond > 0 && len(l.window) >= l.tenSecond {
		return &refusal{PolicyTenSecondlyRolling, l.window[len(l.window)-l.tenSecond].Add(RateLimitInterval).Sub(now)}
	}
	if l.perSecond > 0 {
		if last := since(l.window, now.Add(-time.Second)); len(last) >= l.perSecond {
			return &refusal{PolicySecondly, last[len(last)-l.perSecond].Add(time.Second).Sub(now)}
		}
	}
	if search && l.search > 0 && len(l.searches) >= l.search {
		return &refusal{PolicySecondly, l.searches[len(l.searches)-l.search].Add(time.Second).Sub(now)}
	}
	l.window = append(l.window, now)
	if search {
		l.searches = append(l.searches, now)
	}
	l.dayCount++
	return nil
}

// prune drops requests that left the windows and starts a new day at
// midnight in the account's zone.
func (l *limiter) prune(now time.Time) {
	l.window = since(l.window, now.Add(-RateLimitInterval))
	l.searches = since(l.searches, now.Add(-time.Second))
	y, m, d := now.In(l.loc).Date()
	if day := time.Date(y, m, d, 0, 0, 0, 0, l.loc); !day.Equal(l.day) {
		l.day, l.dayCount = day, 0
	}
}

// since returns the suffix of log (oldest first) later than cutoff.
func since(log []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(log) && !log[i].After(cutoff) {
		i++
	}
	return log[i:]
}

// setHeaders writes the X-HubSpot-RateLimit-* headers as they stand; the
// remaining count of policy exhausted (if any) says 0 whatever the log
// holds, for injected 429s.
func (l *limiter) setHeaders(h http.Header, now time.Time, exhausted string) {
	remaining := func(policy string, limit, used int) string {
		if policy == exhausted {
			return "0"
		}
		return strconv.Itoa(max(limit-used, 0))
	}
	if l.tenSecond > 0 {
		h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(l.tenSecond))
		h.Set("X-HubSpot-RateLimit-Remaining", remaining(PolicyTenSecondlyRolling, l.tenSecond, len(l.window)))
		h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", strconv.FormatInt(RateLimitInterval.Milliseconds(), 10))
	}
	if l.perSecond > 0 {
		h.Set("X-HubSpot-RateLimit-Secondly", strconv.Itoa(l.perSecond))
		h.Set("X-HubSpot-RateLimit-Secondly-Remaining",
			remaining(PolicySecondly, l.perSecond, len(since(l.window, now.Add(-time.Second)))))
	}
	if l.daily > 0 {
		h.Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(l.daily))
		h.Set("X-HubSpot-RateLimit-Daily-Remaining", remaining(PolicyDaily, l.daily, l.dayCount))
	}
}

// admit applies the limits to an authenticated request and writes the
// rate-limit headers; limited means the request must be answered 429.
func (s *Server) admit(c *call, search bool) (*refusal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.limits.admit(c.now, search)
	s.limits.setHeaders(c.w.Header(), c.now, "")
	return ref, ref != nil
}

// rateLimitBody is HubSpot's 429 body, which unlike its other errors has
// errorType and policyName instead of category.
type rateLimitBody struct {
	Status        string `json:"status"`
	Message       string `json:"message"`
	ErrorType     string `json:"errorType"`
	CorrelationID string `json:"correlationId"`
	PolicyName    string `json:"policyName"`
	RequestID     string `json:"requestId"`
}

var policyMessages = map[string]string{
	PolicyTenSecondlyRolling: "You have reached your ten_secondly_rolling limit.",
	PolicySecondly:           "You have reached your secondly limit.",
	PolicyDaily:              "You have reached your daily limit.",
}

// rateLimited answers 429 for ref, with Retry-After when configured.
func (s *Server) rateLimited(c *call, ref *refusal) {
	if s.retryAfter {
		c.w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(ref.wait)))
	}
	c.json(http.StatusTooManyRequests, rateLimitBody{
		Status:        "error",
		Message:       policyMessages[ref.policy],
		ErrorType:     "RATE_LIMIT",
		CorrelationID: c.correlationID,
		PolicyName:    ref.policy,
		RequestID:     newUUID(),
	})
}
