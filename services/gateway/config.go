package gateway

import (
	"log/slog"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/stripesig"
)

// Environments and which Stripe mode each accepts.
const (
	EnvProduction  = "production"  // livemode events only
	EnvStaging     = "staging"     // test-mode events only
	EnvDevelopment = "development" // test-mode events only
)

// PinnedAPIVersion is the Stripe API version of stripe-go v76, the schema the
// hub decodes objects with. Events in other versions are accepted and counted.
const PinnedAPIVersion = stripe.APIVersion

// MaxBodyBytes is the most the body limit can be (Stripe events are far
// smaller); on a NATS server whose max_payload is 1 MiB, the default, it is
// less: see BodyLimit.
const MaxBodyBytes = 1 << 20

// DevAdminAddr is the admin listener in development when GATEWAY_ADMIN_ADDR
// is unset: loopback only. Outside development GATEWAY_ADMIN_ADDR is
// required, so a deployment says where its probes and scraper connect
// instead of finding them silently unreachable on a loopback default.
const DevAdminAddr = "127.0.0.1:8086"

// Config is the gateway's configuration. Secrets redact themselves when logged.
type Config struct {
	Addr           string          // GATEWAY_ADDR: public listener: POST /webhooks/stripe and /healthz, nothing else
	AdminAddr      string          // GATEWAY_ADMIN_ADDR: /readyz, /metrics, /api/stripe/webhook-health (and /healthz), never published; must differ from GATEWAY_ADDR; required in staging and production (development: 127.0.0.1:8086)
	Env            string          // SWITCHYARD_ENV: production (livemode only; the projector requires ops tokens), staging or development (test mode only)
	Secrets        []config.Secret // STRIPE_WEBHOOK_SECRET: one or more whsec_… secrets, comma-separated, or one per line in STRIPE_WEBHOOK_SECRET_FILE (blank lines and surrounding spaces ignored); required (dev generates one)
	Tolerance      time.Duration   // STRIPE_WEBHOOK_TOLERANCE: signature timestamp tolerance, each way (at most 1h)
	PublishTimeout time.Duration   // GATEWAY_PUBLISH_TIMEOUT: longest wait for a PubAck before answering 503 (shorter than the grace and the 30 s write timeout)
	ShutdownGrace  time.Duration   // GATEWAY_SHUTDOWN_GRACE: time in-flight requests get on SIGTERM
	StallAfter     time.Duration   // GATEWAY_CONSUMER_STALL_AFTER: a consumer with work but no delivery for this long is reported stalled
	LogLevel       string          // LOG_LEVEL: debug, info, warn or error
	Pprof          bool            // GATEWAY_PPROF: serve Go's profiles (/debug/pprof/: CPU, heap, goroutines) on the admin listener, never the public one; off by default: they show the code's paths and a CPU profile costs a few per cent while it runs
	NATS           natsbus.Options // NATS_*
}

// AcceptsLivemode reports which Stripe mode this hub accepts.
func (c Config) AcceptsLivemode() bool { return c.Env == EnvProduction }

// LoadConfig reads and validates the configuration; every problem is reported.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Addr:           r.String("GATEWAY_ADDR", ":8080"),
		AdminAddr:      r.String("GATEWAY_ADMIN_ADDR", ""),
		Env:            r.OneOf("SWITCHYARD_ENV", EnvDevelopment, EnvProduction, EnvStaging, EnvDevelopment),
		Secrets:        r.SecretList("STRIPE_WEBHOOK_SECRET"),
		Tolerance:      r.Duration("STRIPE_WEBHOOK_TOLERANCE", stripesig.DefaultTolerance),
		PublishTimeout: r.Duration("GATEWAY_PUBLISH_TIMEOUT", 5*time.Second),
		ShutdownGrace:  r.Duration("GATEWAY_SHUTDOWN_GRACE", 20*time.Second),
		StallAfter:     r.Duration("GATEWAY_CONSUMER_STALL_AFTER", 5*time.Minute),
		LogLevel:       r.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		Pprof:          r.Bool("GATEWAY_PPROF", false),
		NATS:           natsbus.OptionsFromEnv(r, "switchyard-gateway"),
	}
	c.NATS.FailFast = true
	if len(c.Secrets) == 0 {
		r.Fail("STRIPE_WEBHOOK_SECRET", "required: the endpoint's signing secret whsec_… (while rotating, several: one per line in STRIPE_WEBHOOK_SECRET_FILE, or comma-separated)")
	}
	for i, s := range c.Secrets {
		if !strings.HasPrefix(s.Reveal(), "whsec_") || len(s.Reveal()) < len("whsec_")+8 {
			r.Fail("STRIPE_WEBHOOK_SECRET", "item %d is not a Stripe signing secret (whsec_…)", i+1)
		}
	}
	if c.PublishTimeout >= c.ShutdownGrace {
		r.Fail("GATEWAY_PUBLISH_TIMEOUT", "%s must be shorter than GATEWAY_SHUTDOWN_GRACE (%s), so in-flight webhooks get their answer on shutdown", c.PublishTimeout, c.ShutdownGrace)
	}
	if c.PublishTimeout >= writeTimeout {
		r.Fail("GATEWAY_PUBLISH_TIMEOUT", "%s must be shorter than the %s write timeout", c.PublishTimeout, writeTimeout)
	}
	switch {
	case c.AdminAddr == "" && c.Env == EnvDevelopment:
		c.AdminAddr = DevAdminAddr
	case c.AdminAddr == "":
		r.Fail("GATEWAY_ADMIN_ADDR", "required in %s: readiness, metrics and webhook-health are served only on this admin listener, never on the public webhook address; set a port you do not publish, e.g. :8086", c.Env)
	case c.AdminAddr == c.Addr:
		r.Fail("GATEWAY_ADMIN_ADDR", "must differ from GATEWAY_ADDR: the admin endpoints never share the public listener")
	}
	if c.Tolerance > time.Hour {
		r.Fail("STRIPE_WEBHOOK_TOLERANCE", "at most 1h; Stripe recommends 5m")
	}
	return c, r.Err()
}

func (c Config) secretValues() []string {
	out := make([]string, len(c.Secrets))
	for i, s := range c.Secrets {
		out[i] = s.Reveal()
	}
	return out
}

// LogValue is the redacted configuration dump logged at start-up.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("admin_addr", c.AdminAddr),
		slog.String("env", c.Env),
		slog.Int("signing_keys", len(c.Secrets)),
		slog.String("tolerance", c.Tolerance.String()),
		slog.String("publish_timeout", c.PublishTimeout.String()),
		slog.String("shutdown_grace", c.ShutdownGrace.String()),
		slog.String("consumer_stall_after", c.StallAfter.String()),
		slog.String("log_level", c.LogLevel),
		slog.Bool("pprof", c.Pprof),
		slog.Any("nats", c.NATS),
	)
}
