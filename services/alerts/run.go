package alerts

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/alerts/slack"
)

// Durable consumers: dead letters on DLQ, retry outcomes on CRM.
const (
	ConsumerName      = natsbus.ConsumerAlerts
	StormConsumerName = natsbus.ConsumerAlertsCRMRetries
)

// Config is the alerting service's configuration.
type Config struct {
	ReplayKeys  []ed25519.PublicKey // SWITCHYARD_REPLAY_KEYS: the operator's replay keys (consumer.Config.ReplayKeys)
	MaxAttempts int                 // CONSUMER_MAX_ATTEMPTS
	Backoff     []time.Duration     // CONSUMER_BACKOFF
	Addr        string              // ALERTS_ADDR: health, readiness, metrics
	DatabaseURL config.Secret       // DATABASE_URL
	SlackURL    config.Secret       // SLACK_WEBHOOK_URL: an incoming webhook (the URL is the credential)
	Window      time.Duration       // ALERTS_WINDOW: alerts of one kind within it are folded into one
	Storm       int                 // ALERTS_STORM_THRESHOLD: CRM retries per minute that make a storm
	DigestAt    string              // ALERTS_DIGEST_AT: daily digest time, HH:MM UTC, or "off"
	OpsURL      string              // SWITCHYARD_OPS_URL: the status API (alerts reads the daily digest there; unset = no digest)
	OpsToken    config.Secret       // SWITCHYARD_OPS_TOKEN: the token presented to the status API (alerts: a read token)
	ConsoleURL  string              // SWITCHYARD_CONSOLE_URL: the console as people open it; alerts link there and nowhere else ("" = no links)
	Console     slack.Console       // ConsoleURL, parsed
	LogLevel    string              // LOG_LEVEL
	NATS        natsbus.Options
}

// LoadConfig reads and validates the configuration.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Addr:        r.String("ALERTS_ADDR", ":8084"),
		DatabaseURL: r.Secret("DATABASE_URL"),
		SlackURL:    r.Secret("SLACK_WEBHOOK_URL"),
		Window:      r.Duration("ALERTS_WINDOW", 5*time.Minute),
		Storm:       r.Int("ALERTS_STORM_THRESHOLD", 20, 1, 100000),
		DigestAt:    r.String("ALERTS_DIGEST_AT", "09:00"),
		OpsURL:      r.String("SWITCHYARD_OPS_URL", ""),
		OpsToken:    r.Secret("SWITCHYARD_OPS_TOKEN"),
		ConsoleURL:  r.String("SWITCHYARD_CONSOLE_URL", ""),
		LogLevel:    r.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		NATS:        natsbus.OptionsFromEnv(r, "switchyard-alerts"),
	}
	if !c.DatabaseURL.IsSet() {
		r.Fail("DATABASE_URL", "required")
	}
	if !c.SlackURL.IsSet() {
		r.Fail("SLACK_WEBHOOK_URL", "required: a Slack incoming webhook URL")
	}
	var err error
	if c.Console, err = slack.ParseConsole(c.ConsoleURL); err != nil {
		r.Fail("SWITCHYARD_CONSOLE_URL", "%v: want the console's base URL as people open it, e.g. https://ops.example.com", err)
	}
	if c.DigestAt != "off" {
		if _, err := ParseDigestAt(c.DigestAt); err != nil {
			r.Fail("ALERTS_DIGEST_AT", "%v: want HH:MM (UTC) or off", err)
		}
		if c.OpsURL != "" && !c.OpsToken.IsSet() {
			r.Fail("SWITCHYARD_OPS_TOKEN", "required with SWITCHYARD_OPS_URL: a read token for the status API (the daily digest)")
		}
	}
	c.ReplayKeys = consumer.ReplayKeysFromEnv(r)
	c.MaxAttempts, c.Backoff = consumer.RetryFromEnv(r)
	return c, r.Err()
}

// LogValue is the redacted configuration dump.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("database_url", config.RedactURL(c.DatabaseURL.Reveal())),
		slog.String("window", c.Window.String()),
		slog.Int("storm_threshold", c.Storm),
		slog.String("digest_at", c.DigestAt),
		slog.String("ops_url", c.OpsURL),
		slog.String("console_url", c.ConsoleURL),
		slog.Any("nats", c.NATS),
	)
}

// Run runs the alerts service until ctx is cancelled.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("alerts config: %w", err)
	}
	base, err := service.Start(ctx, "alerts", cfg.LogLevel, getenv, stdout)
	if err != nil {
		return err
	}
	defer base.Close(ctx, &err)
	log := base.Log
	pool, err := base.Postgres(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	_, js, err := base.NATS(ctx, cfg.NATS, ConsumerName, StormConsumerName)
	if err != nil {
		return err
	}
	sl, err := slack.New(cfg.SlackURL, base.VendorClient("slack", 10*time.Second, 2))
	if err != nil {
		return err
	}
	if err := Migrate(ctx, pool); err != nil {
		return err
	}
	alerter := NewAlerter(sl, pool, ConsumerName, cfg.Window, cfg.Storm, cfg.Console, log)
	dead, err := consumer.New(js, ledger.New(pool), consumer.Config{
		Name: ConsumerName, Stream: natsbus.StreamDLQ, Subjects: []string{wire.DLQAll}, Workers: 1,
		MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, ReplayKeys: cfg.ReplayKeys, Logger: log, Tracer: base.Tel.Tracer, Meter: base.Tel.Meter,
	}, alerter.HandleDeadLetter)
	if err != nil {
		return err
	}
	retries, err := consumer.New(js, ledger.New(pool), consumer.Config{
		Name: StormConsumerName, Stream: natsbus.StreamCRM, Subjects: []string{subjects.CRMContactPendingRetry}, Workers: 1,
		MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, ReplayKeys: cfg.ReplayKeys, Logger: log, Tracer: base.Tel.Tracer, Meter: base.Tel.Meter,
	}, alerter.HandleCRMRetry)
	if err != nil {
		return err
	}

	parts := map[string]func(context.Context) error{}
	switch {
	case cfg.DigestAt == "off":
	case cfg.OpsURL == "":
		log.WarnContext(ctx, "no daily digest: set SWITCHYARD_OPS_URL and SWITCHYARD_OPS_TOKEN (or ALERTS_DIGEST_AT=off)")
	default:
		at, _ := ParseDigestAt(cfg.DigestAt)
		parts["daily digest"] = NewDigester(sl, pool, at, cfg.OpsURL, cfg.OpsToken, cfg.Console, log).Run
	}
	log.InfoContext(ctx, "configured", "config", cfg)
	parts["dead letters"], parts["summaries"], parts["crm retries"] = dead.Run, alerter.Run, retries.Run
	return base.Serve(ctx, cfg.Addr, parts)
}
