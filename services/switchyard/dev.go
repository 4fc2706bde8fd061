//go:build !nodev

package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/natsembed"
	"github.com/switchyard/switchyard/platform/devkit/pgcluster"
	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/alerts"
	"github.com/switchyard/switchyard/services/crm"
	"github.com/switchyard/switchyard/services/gateway"
	"github.com/switchyard/switchyard/services/identity"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/support"
	"github.com/switchyard/switchyard/services/switchyard/migration"
)

// emulatorStateDir is the folder, in the data folder, where the HubSpot
// and Zendesk emulators keep their accounts between runs: PostgreSQL there
// links customers to contact, user and ticket ids, so those must outlive a
// restart (and never be reissued).
const emulatorStateDir = "emulators"

// Credentials of the dev hub's Zendesk emulator (local only).
const (
	devZendeskEmail = "dev-agent@switchyard.local"
	devZendeskToken = "dev-zendesk-emulator-token"
)

// devCmd runs the hub in one process: embedded NATS (unless NATS_URL),
// PostgreSQL from DATABASE_URL or a private cluster in the data folder, the
// migrate step, and every service through its own Run function, exactly as
// in production.
func devCmd(ctx context.Context, f devFlags, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(f.dataDir, 0o755); err != nil {
		return err
	}
	// The private cluster may run as the postgres user, which must reach it.
	_ = os.Chmod(f.dataDir, 0o755)

	h := &devHub{f: f, getenv: getenv, stdout: stdout, stderr: stderr}
	defer h.stop()
	if err := h.startNATS(); err != nil {
		return err
	}
	if err := h.startPostgres(ctx); err != nil {
		return err
	}
	secrets, err := loadDevSecrets(getenv, f.dataDir)
	if err != nil {
		return err
	}
	vendors, err := h.prepareEmulators()
	if err != nil {
		return err
	}
	env := h.environment(vendors, secrets)
	if err := h.migrate(ctx, env); err != nil {
		return err
	}
	parts, err := h.runServices(ctx, env, secrets.replay)
	if err != nil {
		return err
	}
	if err := h.awaitReady(parts.services); err != nil {
		parts.services.Stop()
		return errors.Join(err, parts.wait())
	}
	h.printBanner(stdout, secrets)
	if err := parts.wait(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Switchyard dev hub stopped.")
	return nil
}

// devFlags are `switchyard dev`'s flags.
type devFlags struct {
	dataDir                             string
	gatewayAddr, gatewayAdminAddr       string
	identityAddr, crmAddr, supportAddr  string
	alertsAddr, projectorAddr, opsAddr  string
	hubspotAddr, zendeskAddr, slackAddr string
	natsPort                            int
	unlimited                           bool    // --vendor-limits none
	vendorErrors                        float64 // --vendor-errors
	// replicas is how many copies of a consumer service run (--replicas);
	// absent means one.
	replicas map[string]int
}

// replicable are the services --replicas may multiply, with the address
// variables a second copy must not share (it listens on a free port).
var replicable = map[string][]string{
	"identity": {"IDENTITY_ADDR"}, "crm": {"CRM_ADDR"}, "support": {"SUPPORT_ADDR"},
	"alerts": {"ALERTS_ADDR"}, "projector": {"PROJECTOR_ADDR", "OPS_ADDR"},
}

// parseReplicas reads --replicas: "identity=2,crm=2".
func parseReplicas(v string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, n, ok := strings.Cut(part, "=")
		count, err := strconv.Atoi(n)
		if _, known := replicable[name]; !ok || !known || err != nil || count < 1 || count > 16 {
			return nil, fmt.Errorf("%q: want service=count, a service among identity, crm, support, alerts, projector and a count from 1 to 16", part)
		}
		out[name] = count
	}
	return out, nil
}

// newDevCmd is `switchyard dev`: its flags, checked before anything starts.
func newDevCmd(c *cliIO) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "run the whole hub locally (what 'make run' does)",
		Long: `Runs the hub in one process: embedded NATS (unless NATS_URL), PostgreSQL from
DATABASE_URL or a private cluster in the data folder, the migrate step, the
vendor emulators (unless the vendor's credentials are set) and every service,
exactly as in production. Stops on SIGINT/SIGTERM.`,
		Args: noArgs,
	}
	check := declareDevFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f, err := check()
		if err != nil {
			return err
		}
		return devCmd(cmd.Context(), f, c.getenv, c.stdout, c.stderr)
	}
	return cmd
}

// declareDevFlags declares dev's flags on fs; check reads and checks them
// after parsing (a usage error saying what is wrong).
func declareDevFlags(fs *pflag.FlagSet) (check func() (devFlags, error)) {
	var f devFlags
	dataDirFlag(fs, &f.dataDir, "folder for NATS file storage, the private PostgreSQL cluster, the emulators' state and the generated signing secret", true)
	fs.StringVar(&f.gatewayAddr, "gateway-addr", "127.0.0.1:8080", "gateway listen address (the webhook and liveness only)")
	fs.StringVar(&f.gatewayAdminAddr, "gateway-admin-addr", gateway.DevAdminAddr, "gateway admin address: readiness, metrics, webhook-health")
	fs.StringVar(&f.identityAddr, "identity-addr", "127.0.0.1:8081", "identity service health/metrics address")
	fs.StringVar(&f.crmAddr, "crm-addr", "127.0.0.1:8082", "CRM service health/metrics address")
	fs.StringVar(&f.hubspotAddr, "hubspot-addr", "127.0.0.1:8092", "HubSpot emulator address (used unless HUBSPOT_TOKEN is set)")
	fs.StringVar(&f.supportAddr, "support-addr", "127.0.0.1:8083", "support service health/metrics address")
	fs.StringVar(&f.zendeskAddr, "zendesk-addr", "127.0.0.1:8093", "Zendesk emulator address (used unless ZENDESK_API_TOKEN is set)")
	fs.StringVar(&f.alertsAddr, "alerts-addr", "127.0.0.1:8084", "alerting service health/metrics address")
	fs.StringVar(&f.projectorAddr, "projector-addr", "127.0.0.1:8085", "projector health/metrics address")
	fs.StringVar(&f.opsAddr, "ops-addr", "127.0.0.1:8090", "status API (ops) address")
	fs.StringVar(&f.slackAddr, "slack-addr", "127.0.0.1:8094", "Slack webhook emulator address (used unless SLACK_WEBHOOK_URL is set)")
	fs.IntVar(&f.natsPort, "nats-port", 4223, "embedded NATS port (ignored when NATS_URL is set)")
	vendorLimits := fs.String("vendor-limits", "plan", "the emulators' rate limits: plan (the vendors' documented limits of their smallest plans) or none (to measure the hub itself)")
	replicas := fs.String("replicas", "", "run more than one copy of consumer services, as production scales them: identity=2,crm=2 (each extra copy's health listener takes a free port)")
	fs.Float64Var(&f.vendorErrors, "vendor-errors", 0, "the share (0 to 1) of requests each emulator fails with a retryable error, as the vendor sends it (HubSpot 502/503/429, Zendesk 500/502/503/429, Slack 429/500): soaks the hub's retries")
	return func() (devFlags, error) {
		if *vendorLimits != "plan" && *vendorLimits != "none" {
			return f, usageErrorf("--vendor-limits %q: want plan or none", *vendorLimits)
		}
		if !(f.vendorErrors >= 0 && f.vendorErrors < 1) {
			return f, usageErrorf("--vendor-errors %v: want a share in [0, 1)", f.vendorErrors)
		}
		var err error
		if f.replicas, err = parseReplicas(*replicas); err != nil {
			return f, usageErrorf("--replicas %v", err)
		}
		f.unlimited = *vendorLimits == "none"
		return f, nil
	}
}

// limit is an emulator's rate limit: n (0 is its documented default), or
// none (negative) with --vendor-limits none.
func (f devFlags) limit(n int) int {
	if f.unlimited {
		return -1
	}
	return n
}

// devHub is what one `switchyard dev` run has started, in order, so it can
// be stopped in reverse.
type devHub struct {
	f              devFlags
	getenv         func(string) string
	stdout, stderr io.Writer
	stops          []func()

	natsURL   string
	natsUsers string // how the parts log in, for the banner
	// as gives each service its own NATS identity on the embedded server;
	// with NATS_URL, every part uses the credentials in the environment.
	as func(identity string, env func(string) string) func(string) string
	// opsLogin is the projector's second login, as the operator, for the
	// dead-letter actions of its status API and console (with NATS_URL:
	// OPS_NATS_USER and OPS_NATS_PASSWORD[_FILE] from the environment).
	opsLogin map[string]string
	dbURL    string

	emulators     []emulator
	emulatorLines []string
}

func (h *devHub) stop() {
	for i := len(h.stops) - 1; i >= 0; i-- {
		h.stops[i]()
	}
}

// startNATS starts the embedded server with one user per service identity,
// unless NATS_URL names another server.
func (h *devHub) startNATS() error {
	getenv := h.getenv
	h.as = func(_ string, env func(string) string) func(string) string { return env }
	h.natsUsers = "credentials from the environment"
	h.opsLogin = map[string]string{}
	if h.natsURL = getenv("NATS_URL"); h.natsURL != "" { // unset: an embedded server on 127.0.0.1:4223
		return nil
	}
	users, files, err := devNATSUsers(h.f.dataDir, natsbus.Options{IdentityConsumer: getenv("IDENTITY_CONSUMER")})
	if err != nil {
		return err
	}
	// Subscribers outside the hub (`switchyard subscriber`) log in too, and
	// those made while dev runs are added as they come.
	subs, subsKey, problems := subscriberUsers(h.f.dataDir)
	for _, p := range problems {
		fmt.Fprintln(h.stderr, "switchyard dev:", p)
	}
	opts := natsembed.Options{Port: h.f.natsPort, StoreDir: filepath.Join(h.f.dataDir, "nats"), Users: users}
	var ns *server.Server
	// The server's goroutines inherit the label from this one, so a CPU
	// profile of dev tells the broker's share from the services'.
	pprof.Do(context.Background(), pprof.Labels("service", "nats"), func(context.Context) {
		ns, err = natsembed.Start(natsembed.Options{Port: opts.Port, StoreDir: opts.StoreDir, Users: append(users[:len(users):len(users)], subs...)})
	})
	if err != nil {
		return fmt.Errorf("embedded NATS on 127.0.0.1:%d (set NATS_URL to use another server, or --nats-port): %w", h.f.natsPort, err)
	}
	h.stops = append(h.stops, func() { ns.Shutdown(); ns.WaitForShutdown() })
	h.stops = append(h.stops, h.watchSubscribers(ns, opts, subsKey, time.Second))
	h.natsURL = ns.ClientURL()
	h.as = func(identity string, env func(string) string) func(string) string {
		return config.Overlay(env, map[string]string{"NATS_USER": identity, "NATS_PASSWORD": "", "NATS_PASSWORD_FILE": files[identity], "NATS_CREDS": ""})
	}
	h.opsLogin = map[string]string{"OPS_NATS_USER": natsbus.IdentityOperator, "OPS_NATS_PASSWORD": "", "OPS_NATS_PASSWORD_FILE": files[natsbus.IdentityOperator]}
	h.natsUsers = "one identity per service, passwords in " + filepath.Join(h.f.dataDir, natsUsersDir) + " (the CLI uses operator's)"
	return nil
}

// startPostgres uses DATABASE_URL, or starts a private cluster in the data
// folder, and checks that it answers.
func (h *devHub) startPostgres(ctx context.Context) error {
	getenv := h.getenv
	h.dbURL = getenv("DATABASE_URL") // unset: a private cluster in .switchyard/postgres
	if h.dbURL == "" {
		c, err := pgcluster.Start(ctx, filepath.Join(h.f.dataDir, "postgres"), 0, getenv)
		if err != nil {
			return fmt.Errorf("private PostgreSQL (set DATABASE_URL to use an existing server): %w", err)
		}
		h.stops = append(h.stops, func() {
			if err := c.Stop(); err != nil {
				fmt.Fprintln(h.stderr, "switchyard dev: stop postgres:", err)
			}
		})
		h.dbURL = c.URL("postgres")
	}
	pool, err := postgres.OpenAs(ctx, h.dbURL, "switchyard-dev", nil)
	if err != nil {
		return err
	}
	pool.Close()
	return nil
}

// devSecrets are the webhook secret, ops tokens and replay keys of a run:
// from the environment, or kept in the data folder.
type devSecrets struct {
	webhook, webhookSource string
	opsTokens, opsSource   string
	replay                 devReplay
}

func loadDevSecrets(getenv func(string) string, dataDir string) (s devSecrets, err error) {
	if s.webhook, s.webhookSource, err = devSecret(getenv, dataDir); err != nil {
		return s, err
	}
	if s.opsTokens, s.opsSource, err = devOpsTokens(getenv, dataDir); err != nil {
		return s, err
	}
	s.replay, err = devReplayKeys(getenv, dataDir)
	return s, err
}

// prepareEmulators makes an emulator for each vendor without real
// credentials and returns the environment that points the services at it.
func (h *devHub) prepareEmulators() (map[string]string, error) {
	over := map[string]string{}
	stateDir := filepath.Join(h.f.dataDir, emulatorStateDir)
	steps := []func(map[string]string, string) error{h.hubspotEmulator, h.zendeskEmulator, h.slackEmulator, h.stripeEmulator}
	for _, step := range steps {
		if err := step(over, stateDir); err != nil {
			return nil, err
		}
	}
	if slices.ContainsFunc(h.emulators, func(e emulator) bool { return e.kept != nil }) {
		h.emulatorLines = append(h.emulatorLines, "  emulator state:  "+stateDir+" (delete to start the emulators empty)")
	}
	return over, nil
}

func (h *devHub) hubspotEmulator(over map[string]string, stateDir string) error {
	getenv := h.getenv
	if getenv("HUBSPOT_TOKEN") != "" || getenv("HUBSPOT_TOKEN_FILE") != "" {
		h.emulatorLines = append(h.emulatorLines, "  HubSpot:         "+orDefault(getenv("HUBSPOT_BASE_URL"), "https://api.hubapi.com"))
		return nil
	}
	hs := hubspotemu.New(hubspotemu.Options{TenSecondLimit: h.f.limit(0), SearchPerSecondLimit: h.f.limit(0), UniqueIDs: true})
	hs.FlakyRate(h.f.vendorErrors, vendorErrorSeed)
	kept, err := statefile.Open(filepath.Join(stateDir, "hubspot.json"), hs, 0)
	if err != nil {
		return fmt.Errorf("hubspot emulator: %w", err)
	}
	durable := newDurableEmulator(hs, kept)
	h.emulators = append(h.emulators, emulator{name: "hubspot", srv: lifecycle.Harden(&http.Server{Addr: h.f.hubspotAddr, Handler: durable}), kept: kept, durable: durable})
	over["HUBSPOT_TOKEN"] = "pat-dev-switchyard-emulator"
	over["HUBSPOT_BASE_URL"] = "http://" + dialAddr(h.f.hubspotAddr)
	h.emulatorLines = append(h.emulatorLines, "  HubSpot:         emulator at http://"+dialAddr(h.f.hubspotAddr)+" (set HUBSPOT_TOKEN for the real one)")
	return nil
}

func (h *devHub) zendeskEmulator(over map[string]string, stateDir string) error {
	getenv := h.getenv
	if getenv("ZENDESK_API_TOKEN") != "" || getenv("ZENDESK_API_TOKEN_FILE") != "" {
		h.emulatorLines = append(h.emulatorLines, "  Zendesk:         "+getenv("ZENDESK_BASE_URL"))
		return nil
	}
	zd, err := zendeskemu.New(zendeskemu.Options{Email: devZendeskEmail, APIToken: devZendeskToken, RateLimit: h.f.limit(0), UniqueIDs: true,
		Groups: []zendeskemu.Group{{ID: 1, Name: "Billing"}, {ID: 2, Name: "Customer Success"}}})
	if err != nil {
		return err
	}
	zd.FlakyRate(h.f.vendorErrors, vendorErrorSeed)
	kept, err := statefile.Open(filepath.Join(stateDir, "zendesk.json"), zd, 0)
	if err != nil {
		return fmt.Errorf("zendesk emulator: %w", err)
	}
	durable := newDurableEmulator(zd, kept)
	h.emulators = append(h.emulators, emulator{name: "zendesk", srv: lifecycle.Harden(&http.Server{Addr: h.f.zendeskAddr, Handler: durable}), kept: kept, durable: durable})
	over["ZENDESK_BASE_URL"] = "http://" + dialAddr(h.f.zendeskAddr)
	over["ZENDESK_EMAIL"], over["ZENDESK_API_TOKEN"] = devZendeskEmail, devZendeskToken
	over["SUPPORT_GROUPS"] = orDefault(getenv("SUPPORT_GROUPS"), "Billing=1,Customer Success=2")
	h.emulatorLines = append(h.emulatorLines, "  Zendesk:         emulator at http://"+dialAddr(h.f.zendeskAddr)+" (set ZENDESK_* for the real one)")
	return nil
}

func (h *devHub) slackEmulator(over map[string]string, _ string) error {
	getenv := h.getenv
	if getenv("SLACK_WEBHOOK_URL") != "" || getenv("SLACK_WEBHOOK_URL_FILE") != "" {
		h.emulatorLines = append(h.emulatorLines, "  Slack:           alerts to the configured webhook")
		return nil
	}
	sl, err := slackemu.New(slackemu.Options{RateLimit: h.f.limit(0)})
	if err != nil {
		return err
	}
	h.emulators = append(h.emulators, emulator{name: "slack", srv: lifecycle.Harden(&http.Server{Addr: h.f.slackAddr, Handler: slackErrors(sl, h.f.vendorErrors, vendorErrorSeed)})})
	over["SLACK_WEBHOOK_URL"] = "http://" + dialAddr(h.f.slackAddr) + sl.Path()
	h.emulatorLines = append(h.emulatorLines, "  Slack:           emulator at http://"+dialAddr(h.f.slackAddr)+" (set SLACK_WEBHOOK_URL for the real one)")
	return nil
}

// environment is what every part of the hub reads: the caller's
// environment, the emulators', and the addresses and secrets of this run.
func (h *devHub) environment(vendors map[string]string, s devSecrets) func(string) string {
	getenv, f := h.getenv, h.f
	env := config.Overlay(config.Overlay(getenv, vendors), map[string]string{
		"NATS_URL":              h.natsURL,
		"DATABASE_URL":          h.dbURL,
		"STRIPE_WEBHOOK_SECRET": s.webhook,
		"SWITCHYARD_ENV":        orDefault(getenv("SWITCHYARD_ENV"), gateway.EnvDevelopment),
		"GATEWAY_ADDR":          f.gatewayAddr,
		"GATEWAY_ADMIN_ADDR":    f.gatewayAdminAddr,
		"IDENTITY_ADDR":         f.identityAddr,
		"CRM_ADDR":              f.crmAddr,
		"SUPPORT_ADDR":          f.supportAddr,
		"ALERTS_ADDR":           f.alertsAddr,
		"PROJECTOR_ADDR":        f.projectorAddr,
		"OPS_ADDR":              f.opsAddr,
		"GATEWAY_METRICS_URL":   orDefault(getenv("GATEWAY_METRICS_URL"), "http://"+dialAddr(f.gatewayAdminAddr)+"/metrics"),
	})
	// Alerts link to the console and nowhere else, and read the daily
	// digest from the status API with a read-only token of their own, made
	// up for this run.
	ops := map[string]string{
		"SWITCHYARD_OPS_URL":     orDefault(getenv("SWITCHYARD_OPS_URL"), "http://"+dialAddr(f.opsAddr)), // the status API (alerts reads the daily digest there)
		"SWITCHYARD_CONSOLE_URL": orDefault(getenv("SWITCHYARD_CONSOLE_URL"), "http://"+dialAddr(f.opsAddr))}
	alertsHasToken := getenv("SWITCHYARD_OPS_TOKEN") != "" || getenv("SWITCHYARD_OPS_TOKEN_FILE") != ""
	switch {
	case s.opsTokens != "":
		tokens := s.opsTokens
		if !alertsHasToken {
			alertsTok := randomHex(24)
			tokens += ",dev-alerts:read:" + alertsTok
			ops["SWITCHYARD_OPS_TOKEN"] = alertsTok
		}
		ops["SWITCHYARD_OPS_TOKENS"] = tokens
	case !alertsHasToken:
		ops["ALERTS_DIGEST_AT"] = orDefault(getenv("ALERTS_DIGEST_AT"), "off")
	}
	return config.Overlay(config.Overlay(env, ops), s.replay.everyone)
}

// migrate makes the streams, consumers and tables the services only check
// for, with the settings in the environment, as a deploy's `switchyard
// migrate` does.
func (h *devHub) migrate(ctx context.Context, env func(string) string) error {
	cfg, err := migration.LoadConfig(h.as(natsbus.IdentityMigrate, env), false)
	if err != nil {
		return fmt.Errorf("switchyard migrate: %w", err)
	}
	mig, err := migration.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("switchyard migrate: %w", err)
	}
	fmt.Fprintf(h.stdout, "Migrated NATS and PostgreSQL (switchyard migrate): %s.\n", mig.Summary())
	return nil
}

// runServices serves the emulators and starts every service, each through
// its own Run function with its own NATS identity. Each part runs under the
// pprof label service=<name>, inherited by every goroutine it starts, so a
// CPU profile of the one dev process splits by service (BenchmarkPipeline's
// CPU per event); the labels live here only, never in a service's own code.
func (h *devHub) runServices(ctx context.Context, env func(string) string, replay devReplay) (hubParts, error) {
	parts := hubParts{services: lifecycle.NewGroup(ctx), vendors: lifecycle.NewGroup(context.WithoutCancel(ctx))}
	services := parts.services
	go func() { <-parts.vendors.Context().Done(); services.Stop() }() // an emulator that fails stops the hub
	for _, emu := range h.emulators {
		if err := serveEmulator(parts.vendors, emu, h.stderr); err != nil {
			services.Stop()
			return hubParts{}, errors.Join(err, parts.wait())
		}
	}
	as, stderr := h.as, h.stderr
	services.Go("gateway", labelled("gateway", func(ctx context.Context) error { return gateway.Run(ctx, as(natsbus.IdentityGateway, env), stderr) }))
	h.goReplicas(services, "identity", env, func(ctx context.Context, env func(string) string) error {
		return identity.Run(ctx, as(natsbus.IdentityIdentity, env), stderr)
	})
	h.goReplicas(services, "crm", env, func(ctx context.Context, env func(string) string) error {
		return crm.Run(ctx, as(natsbus.IdentityCRM, env), stderr)
	})
	h.goReplicas(services, "support", env, func(ctx context.Context, env func(string) string) error {
		return support.Run(ctx, as(natsbus.IdentitySupport, env), stderr)
	})
	h.goReplicas(services, "alerts", env, func(ctx context.Context, env func(string) string) error {
		return alerts.Run(ctx, as(natsbus.IdentityAlerts, env), stderr)
	})
	projectorEnv := config.Overlay(config.Overlay(env, replay.signer), h.opsLogin)
	h.goReplicas(services, "projector", projectorEnv, func(ctx context.Context, env func(string) string) error {
		return projector.Run(ctx, as(natsbus.IdentityProjector, env), stderr)
	})
	return parts, nil
}

// hubParts are the running services and, apart, the vendor emulators they
// call. The emulators stop after the services, as a vendor does not go
// away while the hub finishes its last requests to it: stopped together,
// a Zendesk emulator could be draining while support still waited on it,
// and dev exited 1 on a Ctrl-C under load.
type hubParts struct{ services, vendors *lifecycle.Group }

// wait waits for the services, then stops the emulators and waits for them.
func (p hubParts) wait() error {
	err := p.services.Wait()
	p.vendors.Stop()
	return errors.Join(err, p.vendors.Wait())
}

// goReplicas runs --replicas copies (one by default) of the service name,
// each under its label: the first on the configured addresses, the others
// on free ports, sharing the durable consumers as production replicas do.
func (h *devHub) goReplicas(services *lifecycle.Group, name string, env func(string) string, run func(context.Context, func(string) string) error) {
	for i := range max(1, h.f.replicas[name]) {
		renv, part := env, name
		if i > 0 {
			free := map[string]string{}
			for _, k := range replicable[name] {
				free[k] = "127.0.0.1:0"
			}
			renv, part = config.Overlay(env, free), fmt.Sprintf("%s-%d", name, i+1)
		}
		services.Go(part, labelled(name, func(ctx context.Context) error { return run(ctx, renv) }))
	}
}

// labelled runs run under the pprof label service=name. Labels cost nothing
// unless a CPU profile is being taken.
func labelled(name string, run func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) (err error) {
		pprof.Do(ctx, pprof.Labels("service", name), func(ctx context.Context) { err = run(ctx) })
		return err
	}
}

// serveEmulator listens on the emulator's address now (so a taken port
// fails the start) and serves it, with its state keeper, in vendors.
func serveEmulator(vendors *lifecycle.Group, emu emulator, stderr io.Writer) error {
	ln := emu.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", emu.srv.Addr); err != nil {
			return fmt.Errorf("emulator on %s: %w", emu.srv.Addr, err)
		}
	}
	label := emu.name + "-emulator"
	vendors.Go(emu.name+" emulator", labelled(label, func(ctx context.Context) error {
		err := lifecycle.Serve(ctx, emu.srv, ln, 2*time.Second)
		if errors.Is(err, context.DeadlineExceeded) {
			// The services' HTTP clients live on in this process after they
			// stop, with connections that never sent a request, and
			// net/http counts such a connection younger than 5 s as active:
			// the drain can time out with nothing in flight. The emulator is
			// closed by then and its state flushed below, so it is said, not
			// a failure of dev (which exited 1 on Ctrl-C for it).
			fmt.Fprintf(stderr, "switchyard dev: %s emulator: closed with connections still open after 2s (%v)\n", emu.name, err)
			err = nil
		}
		if emu.kept != nil {
			// Run may have written before the last requests drained.
			err = errors.Join(err, emu.kept.Flush())
		}
		return err
	}))
	if emu.kept != nil {
		vendors.Go(emu.name+" emulator state", labelled(label, emu.kept.Run))
	}
	if emu.durable != nil {
		vendors.Go(emu.name+" emulator saves", labelled(label, emu.durable.Run))
	}
	return nil
}

// awaitReady waits until every service's /readyz answers 200.
func (h *devHub) awaitReady(services *lifecycle.Group) error {
	f := h.f
	for _, addr := range []string{f.gatewayAdminAddr, f.identityAddr, f.crmAddr, f.supportAddr, f.alertsAddr, f.projectorAddr} {
		if err := waitReady(services.Context(), "http://"+dialAddr(addr)+"/readyz", 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// printBanner tells the user where everything is.
func (h *devHub) printBanner(stdout io.Writer, s devSecrets) {
	f := h.f
	base, admin := "http://"+dialAddr(f.gatewayAddr), "http://"+dialAddr(f.gatewayAdminAddr)
	first := strings.Split(s.webhook, ",")[0]
	fmt.Fprintf(stdout, `Switchyard dev hub is running.
  webhook URL:     %s/webhooks/stripe
  signing secret:  %s  (%s)
  webhook health:  %s/api/stripe/webhook-health
  metrics:         %s/metrics
  identity:        http://%s/readyz (consumes stripe.events.>, publishes billing.>)
  crm:             http://%s/readyz (consumes billing.>, publishes crm.>)
  support:         http://%s/readyz (consumes billing.>, opens tickets, publishes support.>)
  alerts:          http://%s/readyz (dead letters and retry storms to Slack)
  projector:       http://%s/readyz (consumes billing.>, crm.>, support.>; customer view in PostgreSQL)
  ops console:     http://%[11]s/console/ (log in with the ops token)
  status API:      http://%[11]s/v1/customers?email=... (Authorization: Bearer <ops token>; /v1/openapi.json)
  ops token:       %s (%s)
%s
  NATS:            %s (%s)
  PostgreSQL:      %s
  data folder:     %s
Send a test event:  switchyard send --secret %s <event.json>
Stop with Ctrl-C.
`, base, first, s.webhookSource, admin, admin, dialAddr(f.identityAddr), dialAddr(f.crmAddr), dialAddr(f.supportAddr), dialAddr(f.alertsAddr), dialAddr(f.projectorAddr), dialAddr(f.opsAddr), devTokenShown(s.opsTokens, s.opsSource), s.opsSource, strings.Join(h.emulatorLines, "\n"), h.natsURL, h.natsUsers, config.RedactURL(h.dbURL), f.dataDir, first)
}

// emulator is one vendor emulator dev serves, and the Keeper of its
// account when it has one to keep.
type emulator struct {
	name    string
	srv     *http.Server
	kept    *statefile.Keeper
	durable *durableEmulator // answers changes once kept has saved them
	ln      net.Listener     // listening already (on a free port), or nil
}

// devSecret returns STRIPE_WEBHOOK_SECRET, or the secret saved in the data
// folder, or a new one saved there so restarts keep the same secret.
func devSecret(getenv func(string) string, dataDir string) (secret, source string, err error) {
	r := config.NewReader(getenv)
	if s := r.Secret("STRIPE_WEBHOOK_SECRET"); s.IsSet() {
		return s.Reveal(), "from STRIPE_WEBHOOK_SECRET", r.Err()
	}
	if err := r.Err(); err != nil {
		return "", "", err
	}
	path := filepath.Join(dataDir, secretFile)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), "saved in " + path, nil
	}
	s := "whsec_" + randomHex(24)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("save generated secret: %w", err)
	}
	return s, "generated, saved in " + path, nil
}

// devNATSUsers returns the embedded server's users, one per identity of
// natsbus.Permissions with its allow lists, and each identity's password
// file: read from the data folder, or generated and saved there.
func devNATSUsers(dataDir string, o natsbus.Options) ([]natsembed.User, map[string]string, error) {
	dir := filepath.Join(dataDir, natsUsersDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("NATS identities: %w", err)
	}
	var users []natsembed.User
	files := map[string]string{}
	for _, p := range natsbus.Permissions(o) {
		path := filepath.Join(dir, p.Identity)
		pw := ""
		if b, err := os.ReadFile(path); err == nil {
			pw = strings.TrimSpace(string(b))
		}
		if pw == "" {
			pw = randomHex(24)
			if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
				return nil, nil, fmt.Errorf("save NATS password of %s: %w", p.Identity, err)
			}
		}
		users = append(users, natsembed.User{Name: p.Identity, Password: pw, Publish: p.Publish, Subscribe: p.Subscribe})
		files[p.Identity] = path
	}
	return users, files, nil
}

// replayKeyFile is where `dev` keeps the operator's replay signing key
// (an Ed25519 seed, hex), in its data folder: the projector signs the
// replays of its status API and console with it (and `projector dlq replay
// --direct`), and every consumer checks them against its public key.
const replayKeyFile = "replay-signing-key"

// devReplay is the environment dev adds for replay signatures.
type devReplay struct {
	everyone map[string]string // SWITCHYARD_REPLAY_KEYS, for every consumer
	signer   map[string]string // the signing key's file, for the projector
}

// devReplayKeys leaves replay keys to the environment when it sets
// SWITCHYARD_REPLAY_KEYS; otherwise it uses the key saved in the data
// folder, or generates and saves one.
func devReplayKeys(getenv func(string) string, dataDir string) (devReplay, error) {
	if getenv("SWITCHYARD_REPLAY_KEYS") != "" {
		return devReplay{}, nil
	}
	path := filepath.Join(dataDir, replayKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = []byte(randomHex(ed25519.SeedSize) + "\n")
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		return devReplay{}, fmt.Errorf("replay signing key: %w", err)
	}
	key, err := consumer.ParseReplaySeed(string(b))
	if err != nil {
		return devReplay{}, fmt.Errorf("replay signing key in %s: %w", path, err)
	}
	return devReplay{
		everyone: map[string]string{"SWITCHYARD_REPLAY_KEYS": hex.EncodeToString(key.Public().(ed25519.PublicKey))},
		signer:   map[string]string{"SWITCHYARD_REPLAY_SIGNING_KEY": "", "SWITCHYARD_REPLAY_SIGNING_KEY_FILE": path},
	}, nil
}

// devTokenShown is the token to print: the one dev generated (what a
// client sends), never one the operator configured.
func devTokenShown(tokens, source string) string {
	if strings.HasPrefix(source, "from ") {
		return "(configured)"
	}
	_, rest, _ := strings.Cut(strings.TrimSpace(tokens), ":")
	_, tok, ok := strings.Cut(rest, ":")
	if !ok {
		return "(configured)"
	}
	return tok
}
