package natsbus

import (
	"time"

	"github.com/switchyard/switchyard/platform/config"
)

// The variables that set the streams' settings. Only `switchyard migrate`
// applies them; a service given one only reports where the streams differ.
const (
	envReplicas        = "NATS_STREAM_REPLICAS"
	envDuplicateWindow = "NATS_DUPLICATE_WINDOW"
	envMaxAge          = "NATS_STREAM_MAX_AGE"
	envDLQMaxMB        = "NATS_DLQ_MAX_MB"
)

// OptionsFromEnv reads the broker settings every service shares:
//
//	NATS_URL               broker URL(s), comma-separated (default nats://127.0.0.1:4222)
//	NATS_CREDS             path to a .creds file (optional)
//	NATS_USER              the service's NATS identity (natsbus.Permissions; optional)
//	NATS_PASSWORD          its password, or NATS_PASSWORD_FILE naming a file holding it
//
// and the streams' settings, which only `switchyard migrate` applies (a
// service checks them against the streams and reports a difference):
//
//	NATS_STREAM_REPLICAS   stream replicas: 1 single server, 3 cluster (default 1)
//	NATS_DUPLICATE_WINDOW  JetStream dedup window (default 1h)
//	NATS_STREAM_MAX_AGE    message retention, 0 = keep forever (default 0); never the DLQ's
//	NATS_DLQ_MAX_MB        the dead letters' size bound in MiB (default 1024)
func OptionsFromEnv(r *config.Reader, name string) Options {
	o := Options{
		URL:             r.String("NATS_URL", "nats://127.0.0.1:4222"),
		CredsFile:       r.String("NATS_CREDS", ""),
		User:            r.String("NATS_USER", ""),
		Password:        r.Secret("NATS_PASSWORD"),
		Name:            name,
		Replicas:        r.Int(envReplicas, 1, 1, 5),
		DuplicateWindow: r.Duration(envDuplicateWindow, time.Hour),
		DLQMaxBytes:     int64(r.Int(envDLQMaxMB, DefaultDLQMaxBytes>>20, 1, 1<<20)) << 20,
	}
	if v := r.String(envMaxAge, "0"); v != "0" {
		if d, err := time.ParseDuration(v); err != nil || d != 0 {
			o.MaxAge = r.Duration(envMaxAge, 0) // reports a bad value
		}
	}
	switch {
	case o.User != "" && !o.Password.IsSet():
		r.Fail("NATS_PASSWORD", "NATS_USER %s is set without NATS_PASSWORD or NATS_PASSWORD_FILE", o.User)
	case o.User == "" && o.Password.IsSet():
		r.Fail("NATS_USER", "a NATS password is set without NATS_USER")
	case o.User != "" && o.CredsFile != "":
		r.Fail("NATS_USER", "set either NATS_USER or NATS_CREDS, not both")
	}
	if o.MaxAge > 0 && o.MaxAge < o.DuplicateWindow {
		r.Fail(envMaxAge, "%s is shorter than %s (%s); JetStream refuses such a stream", o.MaxAge, envDuplicateWindow, o.DuplicateWindow)
	}
	for _, env := range []string{envReplicas, envDuplicateWindow, envMaxAge, envDLQMaxMB} {
		if r.String(env, "") != "" {
			o.Explicit = append(o.Explicit, env)
		}
	}
	return o
}
