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
	o.User, o.Password = loginFromEnv(r, "NATS_USER", "NATS_PASSWORD", "")
	if o.User != "" && o.CredsFile != "" {
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

// loginFromEnv reads a NATS user (userVar, default def) and its password
// (passVar, or passVar_FILE naming a file holding it): a password needs a
// user, and a user set explicitly needs a password.
func loginFromEnv(r *config.Reader, userVar, passVar, def string) (string, config.Secret) {
	explicit := r.String(userVar, "")
	user := r.String(userVar, def)
	pass := r.Secret(passVar)
	switch {
	case explicit != "" && !pass.IsSet():
		r.Fail(passVar, "%s %s is set without %s or %s_FILE", userVar, explicit, passVar, passVar)
	case user == "" && pass.IsSet():
		r.Fail(userVar, "a NATS password is set without %s", userVar)
	}
	return user, pass
}

// OperatorOptionsFromEnv reads a second login, as the operator's NATS
// identity, for a service that acts for the operator (the projector's
// status API and console replay and discard dead letters):
//
//	OPS_NATS_USER           the identity (default operator)
//	OPS_NATS_PASSWORD       its password, or OPS_NATS_PASSWORD_FILE naming a file holding it
//
// It returns base (the broker and stream settings of OptionsFromEnv) logged
// in as that identity, and false when no password is set: the service then
// has no operator connection, never a fallback to its own identity.
func OperatorOptionsFromEnv(r *config.Reader, base Options, name string) (Options, bool) {
	user, pass := loginFromEnv(r, "OPS_NATS_USER", "OPS_NATS_PASSWORD", IdentityOperator)
	if !pass.IsSet() {
		return Options{}, false
	}
	o := base
	o.User, o.Password, o.CredsFile, o.Name = user, pass, "", name
	return o, true
}
