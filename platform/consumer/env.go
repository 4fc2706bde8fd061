package consumer

import (
	"time"

	"github.com/switchyard/switchyard/platform/config"
)

// RetryFromEnv reads the retry policy every consuming service shares:
//
//	CONSUMER_MAX_ATTEMPTS  deliveries before a retryable failure is dead-lettered (default 6)
//	CONSUMER_BACKOFF       delays after failed attempts 1, 2, …, comma-separated; the last
//	                       repeats (default 1s,5s,30s,2m,10m)
//
// Zero values mean the defaults of Config.
func RetryFromEnv(r *config.Reader) (maxAttempts int, backoff []time.Duration) {
	maxAttempts = r.Int("CONSUMER_MAX_ATTEMPTS", 0, 1, 100)
	for _, item := range r.List("CONSUMER_BACKOFF") {
		d, err := time.ParseDuration(item)
		if err != nil || d <= 0 {
			r.Fail("CONSUMER_BACKOFF", "%q is not a positive duration", item)
			continue
		}
		backoff = append(backoff, d)
	}
	return maxAttempts, backoff
}
