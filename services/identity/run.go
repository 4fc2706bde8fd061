package identity

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/service"
	"github.com/switchyard/switchyard/platform/stripeerr"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/proto/wire"
)

// DefaultConsumerName is identity's durable consumer on the STRIPE stream
// (and its dead-letter subject dlq.identity).
const DefaultConsumerName = natsbus.ConsumerIdentity

// Config is the identity service's configuration.
type Config struct {
	ReplayKeys    []ed25519.PublicKey // SWITCHYARD_REPLAY_KEYS: the operator's replay keys (consumer.Config.ReplayKeys)
	Addr          string              // IDENTITY_ADDR: health, readiness, metrics
	DatabaseURL   config.Secret       // DATABASE_URL: PostgreSQL (may hold a password)
	StripeAPIKey  config.Secret       // STRIPE_API_KEY: restricted read key, optional; finds the customer of an unseen charge
	StripeAPIBase string              // STRIPE_API_BASE: override for emulators
	Workers       int                 // IDENTITY_WORKERS: batches of events resolved at once, each in a transaction of its own
	Batch         int                 // IDENTITY_BATCH: the most events resolved, or CRM contact ids linked, in one transaction
	ConsumerName  string              // IDENTITY_CONSUMER: durable name (one per deployment sharing a NATS account)
	LogLevel      string              // LOG_LEVEL
	MaxAttempts   int                 // CONSUMER_MAX_ATTEMPTS
	Backoff       []time.Duration     // CONSUMER_BACKOFF
	NATS          natsbus.Options
}

// LoadConfig reads and validates the configuration.
func LoadConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Addr:          r.String("IDENTITY_ADDR", ":8081"),
		DatabaseURL:   r.Secret("DATABASE_URL"),
		StripeAPIKey:  r.Secret("STRIPE_API_KEY"),
		StripeAPIBase: r.String("STRIPE_API_BASE", ""),
		Workers:       r.Int("IDENTITY_WORKERS", 3, 1, 64),
		Batch:         r.Int("IDENTITY_BATCH", 32, 1, 500),
		ConsumerName:  r.String("IDENTITY_CONSUMER", DefaultConsumerName),
		LogLevel:      r.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		NATS:          natsbus.OptionsFromEnv(r, "switchyard-identity"),
	}
	if !subjectToken(c.ConsumerName) {
		r.Fail("IDENTITY_CONSUMER", "must be one NATS subject token (letters, digits, - and _)")
	}
	if !c.DatabaseURL.IsSet() {
		r.Fail("DATABASE_URL", "required")
	}
	if c.StripeAPIBase != "" {
		// Caught here, not on the first refetch: stripe-go's request would
		// fail without an answer, which reads as transient, and every
		// dispute would be retried until dead-lettered.
		if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			r.Fail("STRIPE_API_BASE", "must be an http(s) URL, e.g. http://localhost:12111")
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
		slog.Bool("stripe_api", c.StripeAPIKey.IsSet()),
		slog.String("stripe_api_base", c.StripeAPIBase),
		slog.Int("workers", c.Workers),
		slog.Int("batch", c.Batch),
		slog.Any("nats", c.NATS),
	)
}

// Run runs the identity service until ctx is cancelled.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fmt.Errorf("identity config: %w", err)
	}
	base, err := service.Start(ctx, "identity", cfg.LogLevel, getenv, stdout)
	if err != nil {
		return err
	}
	defer base.Close(ctx, &err)
	log, tel := base.Log, base.Tel
	pool, err := base.Postgres(ctx, cfg.DatabaseURL.Reveal())
	if err != nil {
		return err
	}
	if err := Migrate(ctx, pool); err != nil {
		return err
	}
	// Both durables are named after IDENTITY_CONSUMER, which switchyard
	// migrate reads too.
	cfg.NATS.IdentityConsumer = cfg.ConsumerName
	nc, js, err := base.NATS(ctx, cfg.NATS, cfg.ConsumerName, natsbus.IdentityCRMLinks(cfg.ConsumerName))
	if err != nil {
		return err
	}

	var reader StripeReader
	if cfg.StripeAPIKey.IsSet() {
		reader = newStripeAPI(cfg.StripeAPIKey.Reveal(), cfg.StripeAPIBase, base.VendorClient("stripe", 80*time.Second, cfg.Workers*cfg.Batch))
	}
	svc := NewService(NewStore(pool), js, reader, log)
	if err := svc.Instrument(base.Tel.Meter); err != nil {
		return err
	}
	// A fetched batch of Stripe events is resolved in one transaction
	// (HandleBatch): one commit and one lock round per batch, not per event.
	cons, err := consumer.NewBatch(js, ledger.New(pool), consumer.Config{
		Name: cfg.ConsumerName, Stream: natsbus.StreamStripe, Subjects: []string{wire.StripeEventsAll},
		Workers: cfg.Workers, Batch: cfg.Batch, MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, ReplayKeys: cfg.ReplayKeys, Logger: log, Tracer: tel.Tracer, Meter: tel.Meter,
	}, svc.HandleBatch)
	if err != nil {
		return err
	}

	// CRM contact ids are linked a pull at a time (HandleCRMOutcomes): one
	// read, and one transaction for the new ones.
	links, err := consumer.NewBatch(js, ledger.New(pool), consumer.Config{
		Name: natsbus.IdentityCRMLinks(cfg.ConsumerName), Stream: natsbus.StreamCRM, Subjects: []string{subjects.CRMContactSynced},
		Workers: 2, Batch: cfg.Batch, MaxAttempts: cfg.MaxAttempts, Backoff: cfg.Backoff, ReplayKeys: cfg.ReplayKeys, Logger: log, Tracer: tel.Tracer, Meter: tel.Meter,
	}, svc.HandleCRMOutcomes)
	if err != nil {
		return err
	}

	log.InfoContext(ctx, "configured", "config", cfg)
	return base.Serve(ctx, cfg.Addr, map[string]func(context.Context) error{
		"consumer":  cons.Run,
		"crm links": links.Run,
		"operator links": func(ctx context.Context) error {
			return svc.ServeLinks(ctx, nc, cfg.ReplayKeys)
		},
	})
}

func subjectToken(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// stripeAPI reads charges, subscriptions, customers and products through
// the Stripe API (or an emulator at base).
type stripeAPI struct {
	api *client.API
	// products reads product names without stripe-go's retries: a name is
	// cosmetic, asked for within a short timeout, and a failure waits a
	// minute (productRetryIn) before Stripe is asked again.
	products *client.API
	keyMode  string // "live" or "test" (stripeerr.KeyMode), for error messages
}

func newStripeAPI(key, base string, hc *http.Client) *stripeAPI {
	backend := func(retries int64, logger stripe.LeveledLoggerInterface) *stripe.Backends {
		cfg := &stripe.BackendConfig{MaxNetworkRetries: stripe.Int64(retries), HTTPClient: hc, LeveledLogger: logger}
		if base != "" {
			cfg.URL = stripe.String(base)
		}
		b := stripe.GetBackendWithConfig(stripe.APIBackend, cfg)
		return &stripe.Backends{API: b, Connect: b, Uploads: b}
	}
	// A failed name lookup is logged by productNames, once per product per
	// hour, not by stripe-go on stderr at every failure.
	quiet := &stripe.LeveledLogger{Level: stripe.LevelNull}
	return &stripeAPI{api: client.New(key, backend(2, nil)), products: client.New(key, backend(0, quiet)), keyMode: stripeerr.KeyMode(key)}
}

func (s *stripeAPI) ChargeCustomer(ctx context.Context, id string) (ChargeRefs, error) {
	p := &stripe.ChargeParams{}
	p.Context = ctx
	ch, err := s.api.Charges.Get(id, p)
	if err != nil {
		return ChargeRefs{}, stripeerr.Classify(err, s.keyMode)
	}
	var f Facts // the charge read as an event's charge is
	f.chargeFacts(ch)
	f.normalise()
	refs := ChargeRefs{CustomerID: f.StripeCustomerID, InvoiceID: f.InvoiceID, PaymentIntentID: f.PaymentIntentID, BillingEmail: f.UnverifiedEmail}
	if refs.CustomerID == "" && refs.InvoiceID != "" {
		// Stripe sets an invoice's charge's customer, but a charge that
		// names only its invoice is resolved through it: the invoice's
		// customer is the charge's.
		ip := &stripe.InvoiceParams{}
		ip.Context = ctx
		in, err := s.api.Invoices.Get(refs.InvoiceID, ip)
		if err != nil {
			return ChargeRefs{}, stripeerr.Classify(err, s.keyMode)
		}
		if in.Customer != nil {
			refs.CustomerID = cleanID(in.Customer.ID)
		}
	}
	return refs, nil
}

func (s *stripeAPI) ObjectState(ctx context.Context, kind, id string) (string, error) {
	switch kind {
	case "subscription":
		p := &stripe.SubscriptionParams{}
		p.Context = ctx
		sub, err := s.api.Subscriptions.Get(id, p)
		if err != nil {
			return "", stripeerr.Classify(err, s.keyMode)
		}
		return string(sub.Status), nil
	case "customer":
		p := &stripe.CustomerParams{}
		p.Context = ctx
		c, err := s.api.Customers.Get(id, p)
		if err != nil {
			return "", stripeerr.Classify(err, s.keyMode)
		}
		return cleanEmail(c.Email), nil
	}
	return "", errclass.Permanent(fmt.Errorf("no state to refetch for a %s", kind))
}

func (s *stripeAPI) ProductName(ctx context.Context, id string) (string, error) {
	p := &stripe.ProductParams{}
	p.Context = ctx
	prod, err := s.products.Products.Get(id, p)
	if err != nil {
		return "", stripeerr.Classify(err, s.keyMode)
	}
	return cleanText(prod.Name, maxNameRunes), nil
}
