package crm

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/crm/hubspot"
)

// ConsumerName is the CRM service's durable consumer on BILLING (and its
// dead-letter subject dlq.crm).
const ConsumerName = natsbus.ConsumerCRM

// Config is the CRM service's configuration.
type Config struct {
	ReplayKeys   []ed25519.PublicKey // SWITCHYARD_REPLAY_KEYS: the operator's replay keys (consumer.Config.ReplayKeys)
	Addr         string              // CRM_ADDR: health, readiness, metrics
	DatabaseURL  config.Secret       // DATABASE_URL
	HubSpotToken config.Secret       // HUBSPOT_TOKEN: private app token (crm.objects.contacts.write, crm.schemas.contacts.write); required
	HubSpotURL   string              // HUBSPOT_BASE_URL: HubSpot API base; point it at an emulator to test
	Workers      int                 // CRM_WORKERS: billing events handled at once, in two pulls of half as many (also the most contacts a burst gathers into one HubSpot call)
	BatchLinger  time.Duration       // CRM_BATCH_LINGER: longest wait for company in a HubSpot batch
	LogLevel     string              // LOG_LEVEL
	MaxAttempts  int                 // CONSUMER_MAX_ATTEMPTS
	Backoff      []time.Duration     // CONSUMER_BACKOFF
	NATS         natsbus.Options
}

// LoadConfig reads and validates the configuration.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Addr:         r.String("CRM_ADDR", ":8082"),
		DatabaseURL:  r.Secret("DATABASE_URL"),
		HubSpotToken: r.Secret("HUBSPOT_TOKEN"),
		HubSpotURL:   r.String("HUBSPOT_BASE_URL", hubspot.DefaultBaseURL),
		Workers:      r.Int("CRM_WORKERS", 64, 1, 256),
		BatchLinger:  r.Duration("CRM_BATCH_LINGER", 150*time.Millisecond),
		LogLevel:     r.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		NATS:         natsbus.OptionsFromEnv(r, "switchyard-crm"),
	}
	if !c.DatabaseURL.IsSet() {
		r.Fail("DATABASE_URL", "required")
	}
	if !c.HubSpotToken.IsSet() {
		r.Fail("HUBSPOT_TOKEN", "required: a HubSpot private app token with crm.objects.contacts.write and crm.schemas.contacts.write")
	}
	c.MaxAttempts, c.Backoff = consumer.RetryFromEnv(r)
	c.ReplayKeys = consumer.ReplayKeysFromEnv(r)
	return c, r.Err()
}

// LogValue is the redacted configuration dump.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("database_url", config.RedactURL(c.DatabaseURL.Reveal())),
		slog.String("hubspot_base_url", c.HubSpotURL),
		slog.Int("workers", c.Workers),
		slog.Any("nats", c.NATS),
	)
}

// Run runs the crm service until ctx is cancelled.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("crm config: %w", err)
	}
	base, err := service.Start(ctx, "crm", cfg.LogLevel, getenv, stdout)
	if err != nil {
		return err
	}
	defer base.Close(ctx, &err)
	log := base.Log
	pool, err := base.Postgres(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	// The ledger's claims (see package ledger) hold a connection while
	// their effects run: the workers' claims share one per group
	// (WithClaimGroups: two round trips and a commit per group of effects
	// started together, not per effect), and a claim that waits for
	// another run of its key holds one alone, so up to one per worker,
	// apart from the pool the readiness probe and the failure history
	// use. Closed after the consumer has drained (deferred after
	// base.Close, so it runs first).
	// Capped: past maxClaims workers wait for a claim (and their upserts
	// batch a little less) rather than exhaust the server's connections.
	claims, err := ledger.OpenClaimPool(ctx, pool, min(cfg.Workers, maxClaims))
	if err != nil {
		return err
	}
	defer claims.Close()
	_, js, err := base.NATS(ctx, cfg.NATS, ConsumerName)
	if err != nil {
		return err
	}
	hs, err := hubspot.New(hubspot.Config{BaseURL: cfg.HubSpotURL, Token: cfg.HubSpotToken,
		HTTPClient: base.VendorClient("hubspot", 30*time.Second, cfg.Workers)})
	if err != nil {
		return err
	}
	// HubSpot may blip while we start: retry transient failures with
	// backoff; wrong credentials or a refused definition stop start-up.
	if err := backoff.Retry(func() error {
		err := hs.EnsureProperties(ctx, hubspot.DefaultProperties())
		if err != nil && !errclass.Of(err).Retryable() {
			return backoff.Permanent(err)
		}
		if err != nil {
			log.WarnContext(ctx, "creating HubSpot contact properties failed; retrying", "error", err)
			// Never sooner than HubSpot's Retry-After (the backoff's own
			// interval follows).
			if lifecycle.Sleep(ctx, errclass.RetryHint(err)) != nil {
				return backoff.Permanent(ctx.Err())
			}
		}
		return err
	}, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(2*time.Minute)), ctx)); err != nil {
		return fmt.Errorf("create HubSpot contact properties: %w", err)
	}
	syncer := NewSyncer(hs, cfg.BatchLinger, ledger.New(pool, ledger.WithClaimPool(claims), ledger.WithClaimGroups()), js, ConsumerName, log)
	if err := syncer.Instrument(base.Tel.Meter); err != nil {
		return err
	}
	cons, err := consumer.NewBatch(js, ledger.New(pool), consumer.Config{
		Name: ConsumerName, Stream: natsbus.StreamBilling, Subjects: []string{wire.BillingAll},
		MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, OnFailure: syncer.OnFailure, ReplayKeys: cfg.ReplayKeys, Logger: log, Tracer: base.Tel.Tracer, Meter: base.Tel.Meter,
	}.SideBySide(cfg.Workers), syncer.HandleBatch)
	if err != nil {
		return err
	}

	log.InfoContext(ctx, "configured", "config", cfg)
	return base.Serve(ctx, cfg.Addr, map[string]func(context.Context) error{
		"hubspot batches": syncer.Run,
		"consumer":        cons.Run,
	})
}

// maxClaims bounds the connections the ledger's claims hold (one per
// upsert in flight; CRM_WORKERS allows 256).
const maxClaims = 32
