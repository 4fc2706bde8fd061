package projector

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/platform/service"
)

// ConsumerName is the projector's durable consumer on each of Streams (and
// its dead-letter subject dlq.projector).
const ConsumerName = natsbus.ConsumerProjector

// Config is the projector's configuration.
type Config struct {
	ReplayKeys []ed25519.PublicKey // SWITCHYARD_REPLAY_KEYS: the operator's replay keys (consumer.Config.ReplayKeys)
	// ReplaySigning (SWITCHYARD_REPLAY_SIGNING_KEY or _FILE) signs the
	// replays the status API and console make for the operator.
	ReplaySigning ed25519.PrivateKey
	Addr          string         // PROJECTOR_ADDR: health, readiness, metrics
	OpsAddr       string         // OPS_ADDR: the status API
	Tokens        opsauth.Tokens // SWITCHYARD_OPS_TOKENS
	Env           string         // SWITCHYARD_ENV
	DatabaseURL   config.Secret  // DATABASE_URL
	Batch         int            // PROJECTOR_BATCH: most messages per transaction
	JaegerURL     string         // JAEGER_UI_URL: trace links in the console
	GatewayURL    string         // GATEWAY_METRICS_URL: webhook figures in the console
	SessionTTL    time.Duration  // CONSOLE_SESSION_TTL: how long a console login lasts
	// TrustedProxies (OPS_TRUSTED_PROXIES): the reverse proxies in front of
	// the ops address whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
	LogLevel       string          // LOG_LEVEL
	MaxAttempts    int             // CONSUMER_MAX_ATTEMPTS
	Backoff        []time.Duration // CONSUMER_BACKOFF
	NATS           natsbus.Options
	// OpsNATS logs in as the operator's NATS identity (OPS_NATS_USER,
	// OPS_NATS_PASSWORD[_FILE]); the status API and console replay and
	// discard dead letters on it only. Unset (HasOpsNATS false), they are
	// read-only.
	OpsNATS    natsbus.Options
	HasOpsNATS bool
}

// LoadConfig reads and validates the configuration.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Addr:        r.String("PROJECTOR_ADDR", ":8085"),
		OpsAddr:     r.String("OPS_ADDR", ":8090"),
		Env:         r.OneOf("SWITCHYARD_ENV", "development", "development", "staging", "production"),
		DatabaseURL: r.Secret("DATABASE_URL"),
		Batch:       r.Int("PROJECTOR_BATCH", 500, 1, 5000),
		JaegerURL:   r.String("JAEGER_UI_URL", ""),
		GatewayURL:  r.String("GATEWAY_METRICS_URL", ""),
		SessionTTL:  r.Duration("CONSOLE_SESSION_TTL", 12*time.Hour),
		LogLevel:    r.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		NATS:        natsbus.OptionsFromEnv(r, "switchyard-projector"),
	}
	// OPS_TRUSTED_PROXIES: reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client for the auth throttle and logs.
	for _, p := range r.List("OPS_TRUSTED_PROXIES") {
		pfx, err := parsePrefix(p)
		if err != nil {
			r.Fail("OPS_TRUSTED_PROXIES", "%q is not an IP address or CIDR prefix", p)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	tokens := r.Secret("SWITCHYARD_OPS_TOKENS") // ops bearer tokens, name:scopes:token,…; 128 bits each outside development
	if tokens.IsSet() {
		ts, err := opsauth.Parse(tokens.Reveal())
		if err != nil {
			r.Fail("SWITCHYARD_OPS_TOKENS", "%v", err)
		} else if c.Env != "development" {
			// A guessable token would guard replays and discards.
			if err := ts.RequireStrong(); err != nil {
				r.Fail("SWITCHYARD_OPS_TOKENS", "in %s every token needs %d bits of entropy: %v", c.Env, opsauth.MinTokenBits, err)
			}
		}
		c.Tokens = ts
	}
	if c.Tokens.Len() == 0 && c.Env == "production" {
		r.Fail("SWITCHYARD_OPS_TOKENS", "required in production: the status API will not run without tokens (name:read+operate:<token>, ...)")
	}
	if !c.DatabaseURL.IsSet() {
		r.Fail("DATABASE_URL", "required")
	}
	c.MaxAttempts, c.Backoff = consumer.RetryFromEnv(r)
	c.ReplayKeys = consumer.ReplayKeysFromEnv(r)
	c.ReplaySigning = consumer.ReplaySigningKeyFromEnv(r)
	c.OpsNATS, c.HasOpsNATS = natsbus.OperatorOptionsFromEnv(r, c.NATS, "switchyard-projector-ops")
	return c, r.Err()
}

// LogValue is the redacted configuration dump.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("ops_addr", c.OpsAddr),
		slog.Any("ops_tokens", c.Tokens),
		slog.String("env", c.Env),
		slog.String("database_url", config.RedactURL(c.DatabaseURL.Reveal())),
		slog.Int("batch", c.Batch),
		slog.String("jaeger_ui_url", c.JaegerURL),
		slog.String("gateway_metrics_url", c.GatewayURL),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.Any("nats", c.NATS),
		slog.Bool("ops_nats", c.HasOpsNATS),
	)
}

// Run runs the projector until ctx is cancelled.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("projector config: %w", err)
	}
	base, err := service.Start(ctx, "projector", cfg.LogLevel, getenv, stdout)
	if err != nil {
		return err
	}
	defer base.Close(ctx, &err)
	log := base.Log
	pool, err := base.Postgres(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	if err := Migrate(ctx, pool); err != nil {
		return err
	}
	if err := MigrateOps(ctx, pool); err != nil {
		return err
	}
	_, js, err := base.NATS(ctx, cfg.NATS, ConsumerName)
	if err != nil {
		return err
	}
	store := NewStore(pool, Schema)
	parts := map[string]func(context.Context) error{}
	for _, stream := range Streams {
		c, err := consumer.NewBatch(js, ledger.New(pool), consumer.Config{
			Name: ConsumerName, Stream: stream, Batch: cfg.Batch, MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff,
			ReplayKeys: cfg.ReplayKeys, Logger: log, Tracer: base.Tel.Tracer, Meter: base.Tel.Meter,
		}, Handler(store))
		if err != nil {
			return err
		}
		parts["consumer "+stream] = c.Run
	}
	if cfg.Tokens.Len() == 0 {
		log.WarnContext(ctx, "no SWITCHYARD_OPS_TOKENS: the status API answers 503 to every request")
	}
	// Dead-letter actions run as the operator, on a connection of their
	// own: the projector's identity may not replay or delete a dead letter.
	var opsJS jetstream.JetStream
	if cfg.HasOpsNATS {
		if opsJS, err = operatorNATS(ctx, base, cfg.OpsNATS); err != nil {
			return err
		}
	} else {
		log.WarnContext(ctx, "no OPS_NATS_PASSWORD_FILE: the status API and console are read-only (dead-letter replay and discard answer 503)")
	}
	console, err := NewConsole(ctx, ConsoleConfig{Store: store, JetStream: js, Operator: opsJS, Pool: pool, ReplaySigningKey: cfg.ReplaySigning, Tokens: cfg.Tokens, JaegerURL: cfg.JaegerURL,
		GatewayMetricsURL: cfg.GatewayURL, SessionTTL: cfg.SessionTTL, TrustedProxies: cfg.TrustedProxies, Logger: log, Meter: base.Tel.Meter})
	if err != nil {
		return err
	}
	api := NewAPI(store, cfg.Tokens, func(ctx context.Context) (rep RebuildReport, err error) {
		who, _ := PrincipalFrom(ctx)
		err = console.Audit(ctx, who.Name, "rebuild", "projection", func() (string, error) {
			rep, err = Rebuild(ctx, pool, js, log)
			return fmt.Sprintf("%d events, %d customers, %.0f events/s", rep.Events, rep.Customers, rep.EventsPerSecond), err
		})
		return rep, err
	},
		console.gatherOverview, func(ctx context.Context) Digest { return GatherDigest(ctx, js, store, console.dlq) }, log).WithDeadLetters(console).WithLinker(console).WithAuthLimiter(console)
	ln, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		return fmt.Errorf("status API: listen %s: %w", cfg.OpsAddr, err)
	}
	log.InfoContext(ctx, "status API listening", "addr", ln.Addr().String())
	parts["status API"] = func(ctx context.Context) error {
		// Every timeout and a header limit: the ops address may face the
		// internet behind a proxy.
		srv := lifecycle.Harden(&http.Server{Handler: api.Handler(console.Register), ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
		return lifecycle.Serve(ctx, srv, ln, 5*time.Second)
	}
	if v, err := StoredViewVersion(ctx, pool); err != nil {
		return err
	} else if v != ViewVersion {
		// Views written by another version (states, stored fields) are
		// rebuilt from the streams; the old ones serve until the swap.
		parts["rebuild to view version "+strconv.Itoa(ViewVersion)] = func(ctx context.Context) error {
			log.WarnContext(ctx, "the projection holds views of another version: rebuilding it from the streams", "stored_version", v, "version", ViewVersion)
			switch _, err := Rebuild(ctx, pool, js, log); {
			case errors.Is(err, ErrRebuildRunning):
				log.InfoContext(ctx, "another replica is rebuilding the projection")
			case err != nil && ctx.Err() == nil:
				log.ErrorContext(ctx, "could not rebuild the projection to the current view version; run switchyard rebuild", "error", err)
				why := err.Error()
				console.rebuildFailed.Store(&why) // the overview and switchyard status say so
			}
			<-ctx.Done()
			return nil
		}
	}
	log.InfoContext(ctx, "configured", "config", cfg)
	return base.Serve(ctx, cfg.Addr, parts)
}

// Handler projects a batch of messages in one transaction. A message that
// can never be projected fails the batch with a permanent error, so the
// consumer isolates it and dead-letters it alone.
func Handler(store *Store) consumer.BatchHandler {
	return func(ctx context.Context, ms []*consumer.Message) error {
		entries := make([]Entry, 0, len(ms))
		for _, m := range ms {
			e, err := NewEntry(m.Subject, m.Data, m.Header)
			if err != nil {
				return errclass.Permanent(err)
			}
			entries = append(entries, e)
		}
		// Database errors are classified by SQLSTATE (platform/errclass):
		// a lost connection is transient, a constraint violation permanent.
		return store.Apply(ctx, entries)
	}
}

// parsePrefix reads a CIDR prefix or a single address (as its /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// operatorNATS connects as the operator's NATS identity for the dead-letter
// actions (drained on shutdown with the rest of the service).
func operatorNATS(ctx context.Context, base *service.Base, o natsbus.Options) (jetstream.JetStream, error) {
	o.Logger = base.Log
	nc, err := natsbus.Connect(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("operator NATS identity %s (OPS_NATS_USER): %w", o.User, err)
	}
	base.Stack.Push("nats (operator)", func(context.Context) error { return nc.Drain() })
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream (operator): %w", err)
	}
	return js, nil
}
