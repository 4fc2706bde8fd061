package natsbus

import (
	"time"

	"github.com/switchyard/switchyard/platform/config"
)

// OptionsFromEnv reads the broker settings every service shares:
//
//	NATS_URL               broker URL(s), comma-separated (default nats://127.0.0.1:4222)
//	NATS_CREDS             path to a .creds file (optional)
//	NATS_STREAM_REPLICAS   stream replicas: 1 single server, 3 cluster (default 1)
//	NATS_DUPLICATE_WINDOW  JetStream dedup window (default 1h)
//	NATS_STREAM_MAX_AGE    message retention, 0 = keep forever (default 0); never the DLQ's
//	NATS_DLQ_MAX_MB        the dead letters' size bound in MiB (default 1024)
func OptionsFromEnv(r *config.Reader, name string) Options {
	o := Options{
		URL:             r.String("NATS_URL", "nats://127.0.0.1:4222"),
		CredsFile:       r.String("NATS_CREDS", ""),
		Name:            name,
		Replicas:        r.Int("NATS_STREAM_REPLICAS", 1, 1, 5),
		DuplicateWindow: r.Duration("NATS_DUPLICATE_WINDOW", time.Hour),
		DLQMaxBytes:     int64(r.Int("NATS_DLQ_MAX_MB", DefaultDLQMaxBytes>>20, 1, 1<<20)) << 20,
	}
	if v := r.String("NATS_STREAM_MAX_AGE", "0"); v != "0" {
		if d, err := time.ParseDuration(v); err != nil || d != 0 {
			o.MaxAge = r.Duration("NATS_STREAM_MAX_AGE", 0) // reports a bad value
		}
	}
	if o.MaxAge > 0 && o.MaxAge < o.DuplicateWindow {
		r.Fail("NATS_STREAM_MAX_AGE", "%s is shorter than NATS_DUPLICATE_WINDOW (%s); JetStream refuses such a stream", o.MaxAge, o.DuplicateWindow)
	}
	return o
}
