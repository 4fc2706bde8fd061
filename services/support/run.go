package support

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/support/zendesk"
)

// ConsumerName is the support service's durable consumer on BILLING (and
// its dead-letter subject dlq.support).
const ConsumerName = natsbus.ConsumerSupport

// Config is the support service's configuration.
type Config struct {
	ReplayKeys  []ed25519.PublicKey // SWITCHYARD_REPLAY_KEYS: the operator's replay keys (consumer.Config.ReplayKeys)
	Addr        string              // SUPPORT_ADDR: health, readiness, metrics
	DatabaseURL config.Secret       // DATABASE_URL
	ZendeskURL  string              // ZENDESK_BASE_URL, e.g. https://acme.zendesk.com
	ZendeskUser string              // ZENDESK_EMAIL: the agent the API token belongs to
	ZendeskKey  config.Secret       // ZENDESK_API_TOKEN: the agent's Zendesk API token; required
	RulesFile   string              // SUPPORT_RULES_FILE: "" = the shipped rules
	Groups      map[string]int64    // SUPPORT_GROUPS: "Billing=123,Customer Success=456"
	Workers     int                 // SUPPORT_WORKERS: billing events handled at once, in two pulls of half as many (a pull's claims share groups, see package ledger)
	LogLevel    string              // LOG_LEVEL
	MaxAttempts int                 // CONSUMER_MAX_ATTEMPTS
	Backoff     []time.Duration     // CONSUMER_BACKOFF
	NATS        natsbus.Options
	Rules       *Rules
}

// LoadConfig reads and validates the configuration and the rules file:
// every rule's group must have a Zendesk group id.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Addr:        r.String("SUPPORT_ADDR", ":8083"),
		DatabaseURL: r.Secret("DATABASE_URL"),
		ZendeskURL:  r.Required("ZENDESK_BASE_URL"),
		ZendeskUser: r.Required("ZENDESK_EMAIL"),
		ZendeskKey:  r.Secret("ZENDESK_API_TOKEN"),
		RulesFile:   r.String("SUPPORT_RULES_FILE", ""),
		Groups:      map[string]int64{},
		Workers:     r.Int("SUPPORT_WORKERS", 32, 1, 64),
		LogLevel:    r.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		NATS:        natsbus.OptionsFromEnv(r, "switchyard-support"),
	}
	if !c.DatabaseURL.IsSet() {
		r.Fail("DATABASE_URL", "required")
	}
	if !c.ZendeskKey.IsSet() {
		r.Fail("ZENDESK_API_TOKEN", "required")
	}
	// SUPPORT_GROUPS: Zendesk group ids of the rules' groups, "Billing=123,Customer Success=456"; required
	for _, item := range r.List("SUPPORT_GROUPS") {
		name, id, ok := strings.Cut(item, "=")
		n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		if !ok || err != nil || n <= 0 {
			r.Fail("SUPPORT_GROUPS", "%q is not name=<Zendesk group id>", item)
			continue
		}
		c.Groups[strings.TrimSpace(name)] = n
	}
	var err error
	if c.RulesFile == "" {
		c.Rules, err = DefaultRules()
	} else if raw, rerr := os.ReadFile(c.RulesFile); rerr != nil {
		err = rerr
	} else {
		c.Rules, err = ParseRules(raw)
	}
	if err != nil {
		r.Fail("SUPPORT_RULES_FILE", "%v", err)
	} else {
		for _, rule := range c.Rules.Rules {
			if _, ok := c.Groups[rule.Group]; !ok {
				r.Fail("SUPPORT_GROUPS", "no Zendesk group id for %q (rule %s)", rule.Group, rule.Name)
			}
		}
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
		slog.String("zendesk_base_url", c.ZendeskURL),
		slog.String("rules_file", c.RulesFile),
		slog.Int("workers", c.Workers),
		slog.Any("nats", c.NATS),
	)
}

// Run runs the support service until ctx is cancelled.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("support config: %w", err)
	}
	base, err := service.Start(ctx, "support", cfg.LogLevel, getenv, stdout)
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
	claims, err := ledger.OpenClaimPool(ctx, pool, cfg.Workers)
	if err != nil {
		return err
	}
	defer claims.Close()
	_, js, err := base.NATS(ctx, cfg.NATS, ConsumerName)
	if err != nil {
		return err
	}
	desk, err := zendesk.New(zendesk.Config{BaseURL: cfg.ZendeskURL, Email: cfg.ZendeskUser, APIToken: cfg.ZendeskKey,
		HTTPClient: base.VendorClient("zendesk", 30*time.Second, cfg.Workers)})
	if err != nil {
		return err
	}
	opener := NewOpener(desk, cfg.Rules, cfg.Groups, ledger.New(pool, ledger.WithClaimPool(claims), ledger.WithClaimGroups()), js, ConsumerName, log)
	if err := opener.Instrument(base.Tel.Meter); err != nil {
		return err
	}
	ccfg := consumer.Config{
		Name: ConsumerName, Stream: natsbus.StreamBilling, Subjects: []string{wire.BillingAll},
		MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, OnFailure: opener.OnFailure, ReplayKeys: cfg.ReplayKeys, Logger: log, Tracer: base.Tel.Tracer, Meter: base.Tel.Meter,
	}.SideBySide(cfg.Workers)
	cons, err := consumer.NewBatch(js, ledger.New(pool), ccfg, consumer.Each(opener.Handle, ccfg.Batch))
	if err != nil {
		return err
	}

	log.InfoContext(ctx, "configured", "config", cfg)
	return base.Serve(ctx, cfg.Addr, map[string]func(context.Context) error{
		"consumer": cons.Run,
	})
}
