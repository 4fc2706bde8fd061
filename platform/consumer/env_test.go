package consumer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
)

func TestRetryFromEnv(t *testing.T) {
	r := config.NewReader(config.MapEnv(map[string]string{"CONSUMER_MAX_ATTEMPTS": "12", "CONSUMER_BACKOFF": "50ms, 1s"}))
	n, b := consumer.RetryFromEnv(r)
	if n != 12 || len(b) != 2 || b[0] != 50*time.Millisecond || b[1] != time.Second || r.Err() != nil {
		t.Fatalf("got %d %v %v", n, b, r.Err())
	}
	r = config.NewReader(config.MapEnv(nil))
	if n, b := consumer.RetryFromEnv(r); n != 0 || b != nil {
		t.Fatalf("defaults: %d %v, want zero values (Config's defaults apply)", n, b)
	}
	r = config.NewReader(config.MapEnv(map[string]string{"CONSUMER_BACKOFF": "soon", "CONSUMER_MAX_ATTEMPTS": "0"}))
	consumer.RetryFromEnv(r)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "CONSUMER_BACKOFF") || !strings.Contains(err.Error(), "CONSUMER_MAX_ATTEMPTS") {
		t.Fatalf("bad values: %v", err)
	}
}
