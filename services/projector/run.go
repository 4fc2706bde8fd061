package projector

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/services/projector/internal/ops"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// ConsumerName is the projector's durable consumer on each of Streams (and
// its dead-letter subject dlq.projector).
const ConsumerName = natsbus.ConsumerProjector

// Schema is where the live projection's tables are (migrations.Schema).
const Schema = migrations.Schema

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
		pfx, err := ops.ParsePrefix(p)
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

// Run runs the projector until ctx is cancelled: the live projection (one
// consumer per stream of view.Streams), the operator surface on the ops
// address, and, when the stored views are of another version, their
// rebuild.
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
	pool, err := base.Postgres(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	if err := migrate(ctx, pool); err != nil {
		return err
	}
	_, js, err := base.NATS(ctx, cfg.NATS, ConsumerName)
	if err != nil {
		return err
	}
	store := view.NewStore(pool, view.Schema)
	parts, err := projection(base, cfg, js, pool, store)
	if err != nil {
		return err
	}
	surface, err := operatorSurface(ctx, base, cfg, js, pool, store)
	if err != nil {
		return err
	}
	if v, err := migrations.StoredViewVersion(ctx, pool); err != nil {
		return err
	} else if v != view.ViewVersion {
		parts["rebuild to view version "+strconv.Itoa(view.ViewVersion)] = rebuildToVersion(base.Log, v, pool, js, surface)
	}
	base.Log.InfoContext(ctx, "configured", "config", cfg)
	// One route table, two listeners that never share an address: the
	// shared health, readiness and metrics on PROJECTOR_ADDR; the status
	// API and console on the ops address, which may face the internet
	// behind a proxy (every listener has every timeout and a header limit).
	return base.ServeListeners(ctx, []service.Listener{
		{Name: service.Admin, Addr: cfg.Addr},
		{Name: ops.Listener, Addr: cfg.OpsAddr},
	}, base.Routes(surface.ServiceRoutes()...), parts)
}

// migrate creates or updates the projection and the ops tables.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := migrations.Projection(ctx, pool); err != nil {
		return err
	}
	return migrations.Ops(ctx, pool)
}

// projection is the live projection: a batch consumer per stream.
func projection(base *service.Base, cfg Config, js jetstream.JetStream, pool *pgxpool.Pool, store *view.Store) (map[string]func(context.Context) error, error) {
	parts := map[string]func(context.Context) error{}
	_, err := base.Tel.Meter.Meter("github.com/switchyard/switchyard/services/projector").Int64ObservableCounter("switchyard_projector_batch_restarts",
		metric.WithDescription("Batches started again because a customer lock they needed next was held by another batch (contention over a merged customer, not a failure)"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(store.Relocks())
			return nil
		}))
	if err != nil {
		return nil, err
	}
	for _, stream := range view.Streams {
		c, err := consumer.NewBatch(js, ledger.New(pool), consumer.Config{
			Name: ConsumerName, Stream: stream, Batch: cfg.Batch, MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff,
			ReplayKeys: cfg.ReplayKeys, Logger: base.Log, Tracer: base.Tel.Tracer, Meter: base.Tel.Meter,
		}, view.Handler(store))
		if err != nil {
			return nil, err
		}
		parts["consumer "+stream] = c.Run
	}
	return parts, nil
}

// operatorSurface builds the status API and the console.
func operatorSurface(ctx context.Context, base *service.Base, cfg Config, js jetstream.JetStream, pool *pgxpool.Pool, store *view.Store) (*ops.Server, error) {
	log := base.Log
	if cfg.Tokens.Len() == 0 {
		log.WarnContext(ctx, "no SWITCHYARD_OPS_TOKENS: the status API answers 503 to every request")
	}
	// Dead-letter actions run as the operator, on a connection of their
	// own: the projector's identity may not replay or delete a dead letter.
	var opsJS jetstream.JetStream
	if cfg.HasOpsNATS {
		var err error
		if opsJS, err = operatorNATS(ctx, base, cfg.OpsNATS); err != nil {
			return nil, err
		}
	} else {
		log.WarnContext(ctx, "no OPS_NATS_PASSWORD_FILE: the status API and console are read-only (dead-letter replay and discard answer 503)")
	}
	return ops.New(ctx, ops.ConsoleConfig{Store: store, JetStream: js, Operator: opsJS, Pool: pool, ReplaySigningKey: cfg.ReplaySigning,
		Tokens: cfg.Tokens, JaegerURL: cfg.JaegerURL, GatewayMetricsURL: cfg.GatewayURL, SessionTTL: cfg.SessionTTL,
		TrustedProxies: cfg.TrustedProxies, Logger: log, Meter: base.Tel.Meter})
}

// rebuildToVersion rebuilds views written by another version (states,
// stored fields) from the streams; the old ones serve until the swap.
func rebuildToVersion(log *slog.Logger, stored int, pool *pgxpool.Pool, js jetstream.JetStream, surface *ops.Server) func(context.Context) error {
	return func(ctx context.Context) error {
		log.WarnContext(ctx, "the projection holds views of another version: rebuilding it from the streams", "stored_version", stored, "version", view.ViewVersion)
		switch _, err := view.Rebuild(ctx, pool, js, log); {
		case errors.Is(err, view.ErrRebuildRunning):
			log.InfoContext(ctx, "another replica is rebuilding the projection")
		case err != nil && ctx.Err() == nil:
			log.ErrorContext(ctx, "could not rebuild the projection to the current view version; run switchyard rebuild", "error", err)
			surface.RebuildFailed(err.Error()) // the overview and switchyard status say so
		}
		<-ctx.Done()
		return nil
	}
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
