package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v76"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/opsauth"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/crm/hubspot"
	projmigrations "github.com/switchyard/switchyard/services/projector/migrations"
)

const doctorLong = `Launch readiness in one command. It changes nothing (its two NATS probes
are built to have no effect) and prints one line per check: ok, FAIL or
skipped, with what to do about it.

  config       the environment below parses
  streams      every stream and durable consumer of natsbus's catalogue exists
               with the catalogue's settings
  permissions  these NATS credentials are refused a publish to
               billing.doctor.probe and a stream delete (least privilege)
  migrations   the database has every migration of this build and the
               projection is at this build's view version
  secrets      Stripe keys of the environment's mode (live in production,
               test elsewhere), whsec_ signing secrets, strong ops tokens;
               only names and prefixes are printed, never a secret
  hubspot      HUBSPOT_TOKEN is valid and holds the contact scopes
  zendesk      the Zendesk credentials belong to an agent or admin
  slack        skipped: an incoming webhook cannot be checked without posting
  stripe       the webhook endpoint at --webhook-url is enabled, sends every
               event type the hub handles and renders stripe-go's API version

A vendor that is not configured is skipped outside production and fails in
production, unless --without says the deployment does not use it. Exits 0
only when every check is ok or off (a skipped check counts as ok in
development only), 3 otherwise (not ready); --json prints
{"env", "ok", "checks": [{"name", "status", "detail"}]}.

--without names vendors this deployment deliberately does not use (stripe:
the Stripe API, no STRIPE_API_KEY); their checks report "off" and pass.
Without --webhook-url (or SWITCHYARD_WEBHOOK_URL) every endpoint of the key's
mode is reported.

Environment:
  SWITCHYARD_ENV          development (default), staging or production
  NATS_URL, NATS_CREDS    the broker and the credentials to probe (and the
                          NATS_STREAM_* settings and IDENTITY_CONSUMER migrate was given)
  NATS_USER, NATS_PASSWORD[_FILE]  a user and password instead of NATS_CREDS
  DATABASE_URL            PostgreSQL
  STRIPE_API_KEY, STRIPE_API_BASE, STRIPE_WEBHOOK_SECRET
  SWITCHYARD_OPS_TOKENS, SWITCHYARD_OPS_TOKEN
  HUBSPOT_TOKEN, HUBSPOT_BASE_URL
  ZENDESK_BASE_URL, ZENDESK_EMAIL, ZENDESK_API_TOKEN
  SLACK_WEBHOOK_URL
Every secret may also come from NAME_FILE.
`

// A check's status.
const (
	checkOK      = "ok"
	checkFail    = "fail"
	checkSkipped = "skipped"
	checkOff     = "off" // a vendor the deployment does not use (--without)
)

// checkResult is one line of the doctor's report.
type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// doctorReport is what `switchyard doctor --json` prints.
type doctorReport struct {
	Env    string        `json:"env"`
	OK     bool          `json:"ok"`
	Checks []checkResult `json:"checks"`
}

// hubEventTypes are the Stripe event types the hub turns into domain
// events: the cases of the switch in identity.Derive
// (services/identity/derive.go). The gateway's Stripe endpoint must send
// every one. TestDoctorEventTypesAreIdentitys fails when the two differ.
var hubEventTypes = []string{
	"charge.dispute.closed",
	"charge.dispute.created",
	"charge.refunded",
	"checkout.session.completed",
	"customer.created",
	"customer.subscription.created",
	"customer.subscription.deleted",
	"customer.subscription.trial_will_end",
	"customer.subscription.updated",
	"customer.updated",
	"invoice.paid",
	"invoice.payment_failed",
	"invoice.payment_succeeded",
}

// currentMigrations is the newest migration of each service's tables in
// this build, as `switchyard migrate` records them in switchyard_migrations
// (ledger: platform/ledger, identity, projector and alerts: their
// migrations folders). TestDoctorKnowsTheCurrentMigrations fails when a migration is
// added and this is not.
var currentMigrations = []struct {
	service string
	version int
}{
	{"ledger", 1},
	{"identity", 4},
	{"projector", 3},
	{"alerts", 1},
}

// keyTables are tables migrate creates that the services cannot run
// without: the done-effects ledger, identity's customers and links, the
// operator audit log.
var keyTables = []string{"done_effects", "customers", "customer_links", "ops_audit"}

var errNotReady = errors.New("not ready")

// checkTimeout bounds each check; they run concurrently.
const checkTimeout = 20 * time.Second

// doctorConfig is the environment the doctor checks.
// doctorVendors are the checks --without may turn off.
var doctorVendors = []string{"hubspot", "zendesk", "slack", "stripe"}

type doctorConfig struct {
	without    map[string]bool // vendors the deployment does not use (--without)
	env        string
	nats       natsbus.Options
	database   config.Secret
	stripeKey  config.Secret
	stripeBase string
	webhookURL string
	signing    []config.Secret
	opsTokens  config.Secret
	opsToken   config.Secret
	hsToken    config.Secret
	hsBase     string
	zdBase     string
	zdEmail    string
	zdToken    config.Secret
	slackURL   config.Secret
	replayKeys int   // SWITCHYARD_REPLAY_KEYS (required outside development: a parse problem)
	problems   error // what did not parse
}

func loadDoctorConfig(getenv func(string) string, webhookURL string) doctorConfig {
	r := config.NewReader(getenv)
	c := doctorConfig{
		env:        r.OneOf("SWITCHYARD_ENV", "development", "development", "staging", "production"),
		nats:       natsbus.OptionsFromEnv(r, "switchyard-doctor"),
		database:   r.Secret("DATABASE_URL"),
		stripeKey:  r.Secret("STRIPE_API_KEY"),
		replayKeys: len(consumer.ReplayKeysFromEnv(r)),
		stripeBase: strings.TrimRight(r.String("STRIPE_API_BASE", stripe.APIURL), "/"),
		webhookURL: webhookURL,
		signing:    r.SecretList("STRIPE_WEBHOOK_SECRET"),
		opsTokens:  r.Secret("SWITCHYARD_OPS_TOKENS"),
		opsToken:   r.Secret("SWITCHYARD_OPS_TOKEN"),
		hsToken:    r.Secret("HUBSPOT_TOKEN"),
		hsBase:     strings.TrimRight(r.String("HUBSPOT_BASE_URL", hubspot.DefaultBaseURL), "/"),
		zdBase:     strings.TrimRight(r.String("ZENDESK_BASE_URL", ""), "/"),
		zdEmail:    r.String("ZENDESK_EMAIL", ""),
		zdToken:    r.Secret("ZENDESK_API_TOKEN"),
		slackURL:   r.Secret("SLACK_WEBHOOK_URL"),
	}
	c.nats.IdentityConsumer = r.String("IDENTITY_CONSUMER", natsbus.ConsumerIdentity)
	if c.webhookURL == "" {
		c.webhookURL = r.String("SWITCHYARD_WEBHOOK_URL", "")
	}
	c.problems = r.Err()
	return c
}

// newDoctorCmd is `switchyard doctor`.
func newDoctorCmd(cio *cliIO) *cobra.Command {
	var asJSON bool
	var webhookURL, without string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "launch readiness: streams, permissions, migrations, secrets, vendors",
		Long:  doctorLong,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return doctorCmd(cmd.Context(), cio.getenv, cio.stdout, asJSON, webhookURL, without)
		},
	}
	jsonFlag(cmd.Flags(), &asJSON)
	// Not webhookURLFlag: doctor checks the public URL Stripe calls, and
	// only when given (unset: every endpoint of the key's mode).
	cmd.Flags().StringVar(&webhookURL, "webhook-url", "", "the gateway's public webhook URL as Stripe calls it (default SWITCHYARD_WEBHOOK_URL)")
	cmd.Flags().StringVar(&without, "without", "", "vendors the deployment does not use, comma-separated: "+strings.Join(doctorVendors, ", "))
	return cmd
}

// doctorCmd is `switchyard doctor`.
func doctorCmd(ctx context.Context, getenv func(string) string, stdout io.Writer, asJSON bool, webhookURL, without string) error {
	c := loadDoctorConfig(getenv, webhookURL)
	c.without = map[string]bool{}
	for _, v := range strings.Split(without, ",") {
		if v = strings.TrimSpace(strings.ToLower(v)); v == "" {
			continue
		}
		if !slices.Contains(doctorVendors, v) {
			return usageErrorf("--without %q: not one of %s", v, strings.Join(doctorVendors, ", "))
		}
		c.without[v] = true
	}
	rep := runDoctor(ctx, c)
	if asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printDoctor(stdout, rep)
	}
	if !rep.OK {
		return fmt.Errorf("%w: %s", errNotReady, strings.Join(rep.blocking(), ", "))
	}
	return nil
}

// blocking names the checks that keep the hub from launching.
func (r doctorReport) blocking() []string {
	var names []string
	for _, c := range r.Checks {
		if !c.passes(r.Env) {
			names = append(names, c.Name)
		}
	}
	return names
}

// passes reports whether c lets the hub launch in env: ok, or skipped in
// development.
func (c checkResult) passes(env string) bool {
	return c.Status == checkOK || c.Status == checkOff || c.Status == checkSkipped && env == "development"
}

// runDoctor runs every check concurrently and reports them in order.
func runDoctor(ctx context.Context, c doctorConfig) doctorReport {
	client := &http.Client{Timeout: checkTimeout}
	vendor := func(name string, check func(context.Context, *http.Client, doctorConfig) checkResult) func(context.Context) checkResult {
		return func(ctx context.Context) checkResult {
			if c.without[name] {
				return checkResult{Name: name, Status: checkOff, Detail: "not used by this deployment (--without)"}
			}
			return check(ctx, client, c)
		}
	}
	checks := []func(context.Context) checkResult{
		func(context.Context) checkResult { return checkConfig(c) },
		func(ctx context.Context) checkResult { return checkStreams(ctx, c.nats) },
		func(ctx context.Context) checkResult { return checkPermissions(ctx, c.nats) },
		func(ctx context.Context) checkResult { return checkMigrations(ctx, c.database) },
		func(context.Context) checkResult { return checkSecrets(c) },
		vendor("hubspot", checkHubSpot),
		vendor("zendesk", checkZendesk),
		vendor("slack", checkSlack),
		vendor("stripe", checkStripeEndpoint),
	}
	rep := doctorReport{Env: c.env, OK: true, Checks: make([]checkResult, len(checks))}
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			rep.Checks[i] = check(cctx)
		})
	}
	wg.Wait()
	for _, r := range rep.Checks {
		rep.OK = rep.OK && r.passes(c.env)
	}
	return rep
}

func printDoctor(w io.Writer, rep doctorReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range rep.Checks {
		status := c.Status
		if status == checkFail {
			status = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, status, c.Detail)
	}
	_ = tw.Flush()
	if rep.OK {
		fmt.Fprintf(w, "ready to launch (%s)\n", rep.Env)
		return
	}
	note := ""
	if rep.Env != "development" {
		note = "; a skipped check counts only in development"
	}
	fmt.Fprintf(w, "NOT READY (%s): %s%s\n", rep.Env, strings.Join(rep.blocking(), ", "), note)
}

func okResult(name, format string, args ...any) checkResult {
	return checkResult{Name: name, Status: checkOK, Detail: fmt.Sprintf(format, args...)}
}

func failResult(name, format string, args ...any) checkResult {
	return checkResult{Name: name, Status: checkFail, Detail: fmt.Sprintf(format, args...)}
}

func skipResult(name, format string, args ...any) checkResult {
	return checkResult{Name: name, Status: checkSkipped, Detail: fmt.Sprintf(format, args...)}
}

// notConfigured is a vendor left unset: skipped outside production, where
// the dev hub runs emulators; a failure in production.
func notConfigured(name, env, what string) checkResult {
	if env == "production" {
		return failResult(name, "%s: required in production", what)
	}
	return skipResult(name, "%s", what)
}

func checkConfig(c doctorConfig) checkResult {
	if c.problems != nil {
		return failResult("config", "%s", strings.ReplaceAll(c.problems.Error(), "\n", "; "))
	}
	return okResult("config", "SWITCHYARD_ENV=%s; every variable parses", c.env)
}

// catalogueConsumers names every durable of the catalogue once.
func catalogueConsumers(o natsbus.Options) []string {
	var names []string
	for _, d := range natsbus.Durables(o) {
		if !slices.Contains(names, d.Name) {
			names = append(names, d.Name)
		}
	}
	return names
}

// checkStreams runs natsbus.Check for every consumer of the catalogue.
// Unlike a service, the doctor does not tolerate drift: a difference from
// the catalogue is what `switchyard migrate` is for.
func checkStreams(ctx context.Context, o natsbus.Options) checkResult {
	const name = "streams"
	nc, err := natsbus.Connect(ctx, o)
	if err != nil {
		return failResult(name, "%v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return failResult(name, "jetstream: %v", err)
	}
	drift, err := natsbus.Check(ctx, js, o, catalogueConsumers(o)...)
	if err != nil {
		return failResult(name, "%v", err) // a NotMigratedError says to run switchyard migrate
	}
	if len(drift) > 0 {
		return failResult(name, "%s: run `switchyard migrate` with the deployment's NATS_* settings", strings.Join(drift, "; "))
	}
	return okResult(name, "%d streams and %d durable consumers as the catalogue has them",
		len(natsbus.Streams(o)), len(natsbus.Durables(o)))
}

// natsProbe is one request no service identity may make.
type natsProbe struct {
	what    string
	subject string
	header  nats.Header
}

// probeName is a stream name no deployment has: the delete probe names it,
// so even credentials allowed to delete streams delete nothing.
func probeName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "DOCTOR_PROBE_" + strings.ToUpper(hex.EncodeToString(b))
}

// checkPermissions connects with the credentials the doctor was given and
// makes two requests least privilege refuses to every service identity: a
// publish on billing.> (only identity publishes billing events, and not
// this subject) and a JetStream stream delete. Neither has an effect when
// accepted: the publish carries Nats-Expected-Stream naming a stream that
// does not exist, so JetStream refuses to store it, and the delete names a
// random stream. A refusal is the server's permissions violation.
func checkPermissions(ctx context.Context, o natsbus.Options) checkResult {
	const name = "permissions"
	violations := make(chan error, 16)
	opts := []nats.Option{
		nats.Name("switchyard-doctor"),
		nats.Timeout(5 * time.Second),
		nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case violations <- err:
				default:
				}
			}
		}),
	}
	opts = append(opts, o.AuthOptions()...)
	nc, err := nats.Connect(o.URL, opts...)
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		// A parse error quotes the raw URL, credentials and all.
		return failResult(name, "connect nats %s: not a valid URL", config.RedactURL(o.URL))
	}
	if err != nil {
		return failResult(name, "connect nats %s: %v", config.RedactURL(o.URL), err)
	}
	defer nc.Close()

	stream := probeName()
	probes := []natsProbe{
		{what: "a publish to billing.doctor.probe", subject: "billing.doctor.probe",
			header: nats.Header{jetstream.ExpectedStreamHeader: []string{stream}}},
		{what: "a stream delete", subject: "$JS.API.STREAM.DELETE." + stream},
	}
	var accepted, refused []string
	for _, p := range probes {
		switch answered, err := p.run(ctx, nc, violations); {
		case err != nil:
			return failResult(name, "%s: %v", p.what, err)
		case answered:
			accepted = append(accepted, p.what)
		default:
			refused = append(refused, p.what)
		}
	}
	switch {
	case len(refused) == 0:
		return failResult(name, "NATS accepts anything from these credentials: least privilege is not configured (%s were accepted)", strings.Join(accepted, " and "))
	case len(accepted) > 0:
		return failResult(name, "these credentials may make %s: least privilege is incomplete (refused: %s)", strings.Join(accepted, " and "), strings.Join(refused, ", "))
	}
	return okResult(name, "refused as they must be: %s", strings.Join(refused, " and "))
}

// run makes the probe's request. answered means the server let it through
// (someone answered, or nobody listens); false means a permissions
// violation came back for the subject. An error is neither within the
// time allowed.
func (p natsProbe) run(ctx context.Context, nc *nats.Conn, violations <-chan error) (answered bool, err error) {
	msg := nats.NewMsg(p.subject)
	msg.Header = p.header
	msg.Data = []byte("switchyard doctor probe")
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := nc.RequestMsgWithContext(rctx, msg)
		done <- err
	}()
	mine := func(v error) bool {
		return strings.Contains(strings.ToLower(v.Error()), strings.ToLower(`publish to "`+p.subject+`"`))
	}
	for {
		select {
		case v := <-violations:
			if mine(v) {
				return false, nil
			}
		case err := <-done:
			if err == nil || errors.Is(err, nats.ErrNoResponders) {
				return true, nil
			}
			// The refusal may be on its way still.
			select {
			case v := <-violations:
				if mine(v) {
					return false, nil
				}
			case <-time.After(250 * time.Millisecond):
			}
			return false, fmt.Errorf("neither an answer nor a refusal: %w", err)
		}
	}
}

// checkMigrations reads what `switchyard migrate` recorded and made.
func checkMigrations(ctx context.Context, dbURL config.Secret) checkResult {
	const name = "migrations"
	if !dbURL.IsSet() {
		return failResult(name, "DATABASE_URL is not set")
	}
	pool, err := postgres.OpenAs(ctx, dbURL.Reveal(), "switchyard-doctor", nil)
	if err != nil {
		return failResult(name, "%v", err)
	}
	defer pool.Close()

	var problems []string
	migrate := false // a problem `switchyard migrate` solves
	var recorded bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('switchyard_migrations') IS NOT NULL`).Scan(&recorded); err != nil {
		return failResult(name, "read migrations: %v", err)
	}
	var applied []string
	for _, m := range currentMigrations {
		have := 0
		if recorded {
			if err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM switchyard_migrations WHERE service = $1`, m.service).Scan(&have); err != nil {
				return failResult(name, "read migrations of %s: %v", m.service, err)
			}
		}
		switch {
		case have < m.version:
			problems = append(problems, fmt.Sprintf("%s is at migration %d of %d", m.service, have, m.version))
			migrate = true
		case have > m.version:
			problems = append(problems, fmt.Sprintf("%s is at migration %d, newer than this switchyard's %d: use the release that migrated it", m.service, have, m.version))
		}
		applied = append(applied, fmt.Sprintf("%s %d", m.service, have))
	}
	for _, t := range keyTables {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t).Scan(&exists); err != nil {
			return failResult(name, "look for table %s: %v", t, err)
		}
		if !exists {
			problems = append(problems, "table "+t+" does not exist")
			migrate = true
		}
	}
	var projection bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, projmigrations.Schema).Scan(&projection); err != nil {
		return failResult(name, "look for the projection: %v", err)
	}
	view := 0
	if !projection {
		problems = append(problems, "the projection schema "+projmigrations.Schema+" does not exist")
		migrate = true
	} else if view, err = projmigrations.StoredViewVersion(ctx, pool); err != nil {
		return failResult(name, "%v", err)
	} else if view != projmigrations.ViewVersion {
		problems = append(problems, fmt.Sprintf("the projection holds view version %d, this build %d: the projector rebuilds it when it starts (or `switchyard rebuild`)", view, projmigrations.ViewVersion))
	}
	if len(problems) > 0 {
		hint := ""
		if migrate {
			hint = ": run `switchyard migrate`"
		}
		return failResult(name, "%s%s", strings.Join(problems, "; "), hint)
	}
	return okResult(name, "migrations %s; projection at view version %d", strings.Join(applied, ", "), view)
}

// stripeKeyMode classifies a Stripe key by its prefix alone, which is all
// the doctor ever prints of it.
func stripeKeyMode(key string) (mode, prefix string) {
	for _, p := range []string{"sk_live_", "rk_live_", "sk_test_", "rk_test_"} {
		if strings.HasPrefix(key, p) {
			return p[3:7], p
		}
	}
	if strings.HasPrefix(key, "pk_") {
		return "publishable", "pk_"
	}
	return "", ""
}

// checkSecrets checks the secrets' kinds against the environment, by name
// and prefix only: a production hub on test keys (or a laptop on live
// ones) is the classic launch-day mix-up.
func checkSecrets(c doctorConfig) checkResult {
	const name = "secrets"
	var problems, good []string
	wantMode := "test"
	if c.env == "production" {
		wantMode = "live"
	}
	if c.stripeKey.IsSet() {
		switch mode, prefix := stripeKeyMode(c.stripeKey.Reveal()); {
		case mode == "":
			problems = append(problems, "STRIPE_API_KEY is not a Stripe secret or restricted key (sk_…, rk_…)")
		case mode == "publishable":
			problems = append(problems, "STRIPE_API_KEY is a publishable key (pk_…): the hub needs a secret or restricted key (rk_…)")
		case mode != wantMode:
			problems = append(problems, fmt.Sprintf("STRIPE_API_KEY is a %s key (%s…) in %s, which needs %s keys", mode, prefix, c.env, wantMode))
		default:
			good = append(good, fmt.Sprintf("STRIPE_API_KEY %s (%s…)", mode, prefix))
		}
	} else if c.env == "production" {
		problems = append(problems, "STRIPE_API_KEY is not set (identity asks Stripe for what events leave out; reconcile lists missed events)")
	}

	for i, s := range c.signing {
		if !strings.HasPrefix(s.Reveal(), "whsec_") {
			problems = append(problems, fmt.Sprintf("STRIPE_WEBHOOK_SECRET item %d is not a Stripe signing secret (whsec_…)", i+1))
		}
	}
	switch n := len(c.signing); {
	case n == 0 && c.env != "development":
		problems = append(problems, "STRIPE_WEBHOOK_SECRET is not set: the gateway cannot verify a delivery")
	case n > 0:
		good = append(good, fmt.Sprintf("STRIPE_WEBHOOK_SECRET %d whsec_…", n))
	}

	var tokens opsauth.Tokens
	if c.opsTokens.IsSet() {
		ts, err := opsauth.Parse(c.opsTokens.Reveal())
		switch {
		case err != nil:
			problems = append(problems, "SWITCHYARD_OPS_TOKENS: "+err.Error())
		case c.env != "development" && ts.RequireStrong() != nil:
			problems = append(problems, "SWITCHYARD_OPS_TOKENS: "+strings.ReplaceAll(ts.RequireStrong().Error(), "\n", "; "))
		default:
			tokens = ts
			good = append(good, fmt.Sprintf("SWITCHYARD_OPS_TOKENS %d token%s", ts.Len(), plural(ts.Len())))
		}
	} else if c.env == "production" {
		problems = append(problems, "SWITCHYARD_OPS_TOKENS is not set: the status API and console answer 503")
	}
	if c.opsToken.IsSet() {
		tok := c.opsToken.Reveal()
		switch {
		case c.env != "development" && opsauth.TokenBits(tok) < opsauth.MinTokenBits:
			problems = append(problems, fmt.Sprintf("SWITCHYARD_OPS_TOKEN has under %d bits of entropy (openssl rand -hex 16)", opsauth.MinTokenBits))
		case tokens.Len() > 0:
			if _, known := tokens.Lookup(tok); !known {
				problems = append(problems, "SWITCHYARD_OPS_TOKEN is none of SWITCHYARD_OPS_TOKENS: the alerts' digest would be refused")
				break
			}
			fallthrough
		default:
			good = append(good, "SWITCHYARD_OPS_TOKEN")
		}
	}
	if c.replayKeys > 0 {
		good = append(good, fmt.Sprintf("SWITCHYARD_REPLAY_KEYS %d key%s", c.replayKeys, plural(c.replayKeys)))
	} else if c.env != "development" {
		problems = append(problems, "SWITCHYARD_REPLAY_KEYS is not set: consumers would trust any replay header (switchyard replay-key)")
	}
	if len(problems) > 0 {
		return failResult(name, "%s", strings.Join(problems, "; "))
	}
	if len(good) == 0 {
		return okResult(name, "no secrets set to check (%s)", c.env)
	}
	return okResult(name, "%s (%s)", strings.Join(good, ", "), c.env)
}

// The HubSpot scopes the crm service needs: it upserts contacts (write),
// reads and searches them (read), and creates its custom properties at
// start unless they exist (schemas write).
const (
	scopeContactsWrite = "crm.objects.contacts.write"
	scopeContactsRead  = "crm.objects.contacts.read"
	scopeSchemasWrite  = "crm.schemas.contacts.write"
)

// checkHubSpot asks HubSpot what HUBSPOT_TOKEN is: the private-app token
// introspection needs no scope, so it tells a wrong token from a token
// without the scopes the crm service needs.
func checkHubSpot(ctx context.Context, client *http.Client, c doctorConfig) checkResult {
	const name = "hubspot"
	if !c.hsToken.IsSet() {
		return notConfigured(name, c.env, "HUBSPOT_TOKEN is not set")
	}
	tok := c.hsToken.Reveal()
	body, _ := json.Marshal(map[string]string{"tokenKey": tok})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.hsBase+"/oauth/v2/private-apps/get/access-token-info", bytes.NewReader(body))
	if err != nil {
		return failResult(name, "HUBSPOT_BASE_URL: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok) // optional for na1 tokens, required for eu1
	var info struct {
		HubID  int64    `json:"hubId"`
		Scopes []string `json:"scopes"`
	}
	status, err := doJSON(client, req, &info)
	switch {
	case err != nil:
		return failResult(name, "ask HubSpot about HUBSPOT_TOKEN: %v", err)
	case status == http.StatusUnauthorized:
		return failResult(name, "HubSpot does not know HUBSPOT_TOKEN (401): revoked, rotated or mistyped; copy the private app's current token")
	case status != http.StatusOK:
		return failResult(name, "HubSpot answered %d to the token-info request", status)
	}
	var missing []string
	for _, s := range []string{scopeContactsWrite, scopeContactsRead} {
		if !slices.Contains(info.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return failResult(name, "HUBSPOT_TOKEN (hub %d) lacks %s: the crm service cannot upsert contacts; add the scope to the private app", info.HubID, strings.Join(missing, " and "))
	}
	if slices.Contains(info.Scopes, scopeSchemasWrite) {
		return okResult(name, "HUBSPOT_TOKEN is valid for hub %d with %s, %s and %s", info.HubID, scopeContactsWrite, scopeContactsRead, scopeSchemasWrite)
	}
	// Without schemas write the crm service starts only if its properties exist.
	var absent []string
	for _, p := range hubspot.DefaultProperties() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.hsBase+"/crm/v3/properties/contacts/"+url.PathEscape(p.Name), nil)
		if err != nil {
			return failResult(name, "HUBSPOT_BASE_URL: %v", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		status, err := doJSON(client, req, nil)
		switch {
		case err != nil:
			return failResult(name, "read HubSpot property %s: %v", p.Name, err)
		case status == http.StatusNotFound:
			absent = append(absent, p.Name)
		case status != http.StatusOK:
			return failResult(name, "HubSpot answered %d to reading property %s", status, p.Name)
		}
	}
	if len(absent) > 0 {
		return failResult(name, "HUBSPOT_TOKEN (hub %d) lacks %s and the contact properties %s do not exist: the crm service cannot create them at start",
			info.HubID, scopeSchemasWrite, strings.Join(absent, ", "))
	}
	return okResult(name, "HUBSPOT_TOKEN is valid for hub %d with %s and %s; every custom property exists", info.HubID, scopeContactsWrite, scopeContactsRead)
}

// checkZendesk asks Zendesk who the credentials are. GET users/me answers
// anonymous callers too, so the role decides, not the status.
func checkZendesk(ctx context.Context, client *http.Client, c doctorConfig) checkResult {
	const name = "zendesk"
	var unset []string
	for _, v := range []struct {
		name string
		set  bool
	}{{"ZENDESK_BASE_URL", c.zdBase != ""}, {"ZENDESK_EMAIL", c.zdEmail != ""}, {"ZENDESK_API_TOKEN", c.zdToken.IsSet()}} {
		if !v.set {
			unset = append(unset, v.name)
		}
	}
	if len(unset) > 0 {
		return notConfigured(name, c.env, strings.Join(unset, ", ")+" not set")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.zdBase+"/api/v2/users/me.json", nil)
	if err != nil {
		return failResult(name, "ZENDESK_BASE_URL: %v", err)
	}
	req.SetBasicAuth(c.zdEmail+"/token", c.zdToken.Reveal())
	var me struct {
		User struct {
			ID        *int64 `json:"id"`
			Role      string `json:"role"`
			Active    bool   `json:"active"`
			Suspended bool   `json:"suspended"`
		} `json:"user"`
	}
	status, err := doJSON(client, req, &me)
	u := me.User
	switch {
	case err != nil:
		return failResult(name, "ask Zendesk who ZENDESK_EMAIL is: %v", err)
	case status == http.StatusUnauthorized:
		return failResult(name, "Zendesk refused ZENDESK_EMAIL and ZENDESK_API_TOKEN (401): a wrong or revoked API token, or the token of another agent")
	case status == http.StatusForbidden:
		return failResult(name, "Zendesk forbids this agent the API (403): give its role API and ticket access")
	case status != http.StatusOK:
		return failResult(name, "Zendesk answered %d to GET /api/v2/users/me", status)
	case u.ID == nil:
		return failResult(name, "Zendesk answered as the anonymous user: the credentials were not taken")
	case u.Role != "agent" && u.Role != "admin":
		return failResult(name, "ZENDESK_EMAIL is a Zendesk %s: tickets need an agent or admin", orDefault(u.Role, "user of no role"))
	case !u.Active || u.Suspended:
		return failResult(name, "ZENDESK_EMAIL's Zendesk user %d is deleted or suspended", *u.ID)
	}
	return okResult(name, "ZENDESK_API_TOKEN authenticates %s %d", u.Role, *u.ID)
}

// checkSlack posts an empty object to the incoming webhook: Slack refuses
// it with 400 no_text once it has accepted the webhook's address, so
// nothing reaches the channel, while a revoked or mistyped webhook answers
// 403 invalid_token, 404 no_service or 410 channel_is_archived first.
func checkSlack(ctx context.Context, client *http.Client, c doctorConfig) checkResult {
	const name = "slack"
	if !c.slackURL.IsSet() {
		return notConfigured(name, c.env, "SLACK_WEBHOOK_URL is not set")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.slackURL.Reveal(), strings.NewReader("{}"))
	if err != nil {
		return failResult(name, "SLACK_WEBHOOK_URL is not a URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL: its path is the webhook's secret
		}
		return failResult(name, "the Slack webhook cannot be reached: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	code := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusBadRequest && code == "no_text":
		return okResult(name, "SLACK_WEBHOOK_URL is live (an empty probe was refused with no_text; nothing was posted)")
	case resp.StatusCode == http.StatusOK:
		return failResult(name, "SLACK_WEBHOOK_URL accepted an empty message: is it a Slack incoming webhook?")
	case resp.StatusCode == http.StatusTooManyRequests:
		return failResult(name, "Slack rate-limited the probe (429): run doctor again in a minute")
	}
	return failResult(name, "SLACK_WEBHOOK_URL answered %d %s: the webhook is revoked, mistyped or its channel archived", resp.StatusCode, sinkCode(code))
}

// sinkCode keeps a vendor's error code printable and short.
func sinkCode(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

// webhookEndpoint is the part of Stripe's webhook endpoint object the
// doctor reads.
type webhookEndpoint struct {
	ID            string   `json:"id"`
	URL           string   `json:"url"`
	Status        string   `json:"status"`
	APIVersion    *string  `json:"api_version"` // null: the account's default
	EnabledEvents []string `json:"enabled_events"`
}

// checkStripeEndpoint lists the webhook endpoints of the key's mode and
// judges the gateway's (or, its URL unknown, every one).
func checkStripeEndpoint(ctx context.Context, client *http.Client, c doctorConfig) checkResult {
	const name = "stripe"
	if !c.stripeKey.IsSet() {
		return notConfigured(name, c.env, "STRIPE_API_KEY is not set: the webhook endpoint cannot be checked")
	}
	endpoints, accountVersion, res := listWebhookEndpoints(ctx, client, c)
	if res != nil {
		return *res
	}
	mode := "test"
	if m, _ := stripeKeyMode(c.stripeKey.Reveal()); m == "live" {
		mode = "live"
	}
	if len(endpoints) == 0 {
		return failResult(name, "the account has no webhook endpoint in %s mode: add the gateway's URL in the Dashboard", mode)
	}
	if c.webhookURL != "" {
		want := strings.TrimRight(c.webhookURL, "/")
		var mine []webhookEndpoint
		var urls []string
		for _, e := range endpoints {
			if strings.TrimRight(e.URL, "/") == want {
				mine = append(mine, e)
			}
			urls = append(urls, e.URL)
		}
		if len(mine) == 0 {
			return failResult(name, "no %s-mode endpoint delivers to %s (the account's: %s)", mode, c.webhookURL, strings.Join(urls, ", "))
		}
		endpoints = mine
	}
	var good, bad []string
	for _, e := range endpoints {
		if problems := judgeEndpoint(e, accountVersion); len(problems) > 0 {
			bad = append(bad, fmt.Sprintf("%s (%s) %s", e.ID, e.URL, strings.Join(problems, ", ")))
		} else {
			good = append(good, fmt.Sprintf("%s (%s)", e.ID, e.URL))
		}
	}
	switch {
	case c.webhookURL != "" && len(bad) > 0:
		return failResult(name, "%s", strings.Join(bad, "; "))
	case c.webhookURL != "":
		return okResult(name, "%s: enabled, every event type the hub handles, API version %s", strings.Join(good, ", "), stripe.APIVersion)
	case len(good) == 0:
		return failResult(name, "no endpoint of the %d in %s mode would serve the hub: %s", len(endpoints), mode, strings.Join(bad, "; "))
	}
	detail := fmt.Sprintf("%s would serve the hub (enabled, every event type it handles, API version %s)", strings.Join(good, ", "), stripe.APIVersion)
	if len(bad) > 0 {
		detail += "; others: " + strings.Join(bad, "; ")
	}
	return okResult(name, "%s; set --webhook-url or SWITCHYARD_WEBHOOK_URL to check the gateway's own", detail)
}

// judgeEndpoint lists why e cannot serve the hub.
func judgeEndpoint(e webhookEndpoint, accountVersion string) []string {
	var p []string
	if e.Status != "enabled" {
		p = append(p, "is "+orDefault(e.Status, "of no status"))
	}
	if !slices.Contains(e.EnabledEvents, "*") {
		var missing []string
		for _, t := range hubEventTypes {
			if !slices.Contains(e.EnabledEvents, t) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			p = append(p, "does not send "+strings.Join(missing, ", "))
		}
	}
	switch {
	case e.APIVersion != nil && *e.APIVersion != stripe.APIVersion:
		p = append(p, fmt.Sprintf("renders API version %s, stripe-go pins %s", *e.APIVersion, stripe.APIVersion))
	case e.APIVersion == nil && accountVersion == "":
		p = append(p, "renders the account's default API version, which Stripe did not say")
	case e.APIVersion == nil && accountVersion != stripe.APIVersion:
		p = append(p, fmt.Sprintf("renders the account's default API version %s, stripe-go pins %s", accountVersion, stripe.APIVersion))
	}
	return p
}

// listWebhookEndpoints pages through GET /v1/webhook_endpoints. It sends
// no Stripe-Version, so Stripe says the account's default version back:
// the version of an endpoint whose api_version is null. A non-nil result
// is the check's failure.
func listWebhookEndpoints(ctx context.Context, client *http.Client, c doctorConfig) ([]webhookEndpoint, string, *checkResult) {
	const name = "stripe"
	var (
		all            []webhookEndpoint
		accountVersion string
		after          string
	)
	for page := 0; page < 50; page++ {
		q := url.Values{"limit": {"100"}}
		if after != "" {
			q.Set("starting_after", after)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.stripeBase+"/v1/webhook_endpoints?"+q.Encode(), nil)
		if err != nil {
			r := failResult(name, "STRIPE_API_BASE: %v", err)
			return nil, "", &r
		}
		req.Header.Set("Authorization", "Bearer "+c.stripeKey.Reveal())
		var list struct {
			Data    []webhookEndpoint `json:"data"`
			HasMore bool              `json:"has_more"`
		}
		res, err := client.Do(req)
		if err != nil {
			r := failResult(name, "list webhook endpoints: %v", err)
			return nil, "", &r
		}
		raw, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
		_ = res.Body.Close()
		reqID := res.Header.Get("Request-Id")
		var r checkResult
		switch {
		case err != nil:
			r = failResult(name, "list webhook endpoints: %v", err)
		case res.StatusCode == http.StatusUnauthorized:
			r = failResult(name, "Stripe refused STRIPE_API_KEY (401: wrong, rolled or revoked; request %s)", reqID)
		case res.StatusCode == http.StatusForbidden:
			r = failResult(name, "STRIPE_API_KEY may not read webhook endpoints (403; a restricted key needs Webhook Endpoints: read; request %s)", reqID)
		case res.StatusCode != http.StatusOK:
			r = failResult(name, "GET /v1/webhook_endpoints answered %d (request %s)", res.StatusCode, reqID)
		default:
			if err := json.Unmarshal(raw, &list); err != nil {
				r = failResult(name, "GET /v1/webhook_endpoints: the list does not decode: %v", err)
			}
		}
		if r.Status != "" {
			return nil, "", &r
		}
		if page == 0 {
			accountVersion = res.Header.Get("Stripe-Version")
		}
		all = append(all, list.Data...)
		if !list.HasMore || len(list.Data) == 0 {
			return all, accountVersion, nil
		}
		after = list.Data[len(list.Data)-1].ID
	}
	r := failResult(name, "the account has more than 5,000 webhook endpoints; the doctor stopped listing")
	return nil, "", &r
}

// doJSON sends req and decodes a 200's JSON body into v (nil: read and
// drop it). It returns the status; err is a transport or decoding error.
func doJSON(client *http.Client, req *http.Request, v any) (int, error) {
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			return res.StatusCode, fmt.Errorf("the answer does not decode: %w", err)
		}
	}
	return res.StatusCode, nil
}
