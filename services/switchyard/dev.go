package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

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

var errUsage = errors.New("usage")

// secretFile is where `dev` keeps a generated signing secret, in its data
// folder, and where `send` finds it.
const secretFile = "webhook-secret"

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
func devCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", ".switchyard", "folder for NATS file storage, the private PostgreSQL cluster, the emulators' state and the generated signing secret")
	gatewayAddr := fs.String("gateway-addr", "127.0.0.1:8080", "gateway listen address (the webhook and liveness only)")
	gatewayAdminAddr := fs.String("gateway-admin-addr", gateway.DevAdminAddr, "gateway admin address: readiness, metrics, webhook-health")
	identityAddr := fs.String("identity-addr", "127.0.0.1:8081", "identity service health/metrics address")
	crmAddr := fs.String("crm-addr", "127.0.0.1:8082", "CRM service health/metrics address")
	hubspotAddr := fs.String("hubspot-addr", "127.0.0.1:8092", "HubSpot emulator address (used unless HUBSPOT_TOKEN is set)")
	supportAddr := fs.String("support-addr", "127.0.0.1:8083", "support service health/metrics address")
	zendeskAddr := fs.String("zendesk-addr", "127.0.0.1:8093", "Zendesk emulator address (used unless ZENDESK_API_TOKEN is set)")
	alertsAddr := fs.String("alerts-addr", "127.0.0.1:8084", "alerting service health/metrics address")
	projectorAddr := fs.String("projector-addr", "127.0.0.1:8085", "projector health/metrics address")
	opsAddr := fs.String("ops-addr", "127.0.0.1:8090", "status API (ops) address")
	slackAddr := fs.String("slack-addr", "127.0.0.1:8094", "Slack webhook emulator address (used unless SLACK_WEBHOOK_URL is set)")
	natsPort := fs.Int("nats-port", 4223, "embedded NATS port (ignored when NATS_URL is set)")
	vendorLimits := fs.String("vendor-limits", "plan", "the emulators' rate limits: plan (the vendors' documented limits of their smallest plans) or none (to measure the hub itself)")
	vendorErrors := fs.Float64("vendor-errors", 0, "the share (0 to 1) of requests each emulator fails with a retryable error, as the vendor sends it (HubSpot 502/503/429, Zendesk 500/502/503/429, Slack 429/500): soaks the hub's retries")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *vendorLimits != "plan" && *vendorLimits != "none" {
		fmt.Fprintf(stderr, "switchyard dev: --vendor-limits %q: want plan or none\n", *vendorLimits)
		return errUsage
	}
	if !(*vendorErrors >= 0 && *vendorErrors < 1) {
		fmt.Fprintf(stderr, "switchyard dev: --vendor-errors %v: want a share in [0, 1)\n", *vendorErrors)
		return errUsage
	}
	unlimited := *vendorLimits == "none"
	limit := func(n int) int { // 0 is each emulator's documented default, negative none
		if unlimited {
			return -1
		}
		return n
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	// The private cluster may run as the postgres user, which must reach it.
	_ = os.Chmod(*dataDir, 0o755)

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	natsURL := getenv("NATS_URL") // unset: an embedded server on 127.0.0.1:4223
	// as gives each service its own NATS identity on the embedded server;
	// with NATS_URL, every part uses the credentials in the environment.
	as := func(_ string, env func(string) string) func(string) string { return env }
	natsUsers := "credentials from the environment"
	// opsLogin is the projector's second login, as the operator, for the
	// dead-letter actions of its status API and console (with NATS_URL:
	// OPS_NATS_USER and OPS_NATS_PASSWORD[_FILE] from the environment).
	opsLogin := map[string]string{}
	if natsURL == "" {
		users, files, err := devNATSUsers(*dataDir, natsbus.Options{IdentityConsumer: getenv("IDENTITY_CONSUMER")})
		if err != nil {
			return err
		}
		ns, err := natsembed.Start(natsembed.Options{Port: *natsPort, StoreDir: filepath.Join(*dataDir, "nats"), Users: users})
		if err != nil {
			return fmt.Errorf("embedded NATS on 127.0.0.1:%d (set NATS_URL to use another server, or --nats-port): %w", *natsPort, err)
		}
		stops = append(stops, func() { ns.Shutdown(); ns.WaitForShutdown() })
		natsURL = ns.ClientURL()
		as = func(identity string, env func(string) string) func(string) string {
			return config.Overlay(env, map[string]string{"NATS_USER": identity, "NATS_PASSWORD": "", "NATS_PASSWORD_FILE": files[identity], "NATS_CREDS": ""})
		}
		opsLogin = map[string]string{"OPS_NATS_USER": natsbus.IdentityOperator, "OPS_NATS_PASSWORD": "", "OPS_NATS_PASSWORD_FILE": files[natsbus.IdentityOperator]}
		natsUsers = "one identity per service, passwords in " + filepath.Join(*dataDir, natsUsersDir) + " (the CLI uses operator's)"
	}

	dbURL := getenv("DATABASE_URL") // unset: a private cluster in .switchyard/postgres
	if dbURL == "" {
		c, err := pgcluster.Start(ctx, filepath.Join(*dataDir, "postgres"), 0, getenv)
		if err != nil {
			return fmt.Errorf("private PostgreSQL (set DATABASE_URL to use an existing server): %w", err)
		}
		stops = append(stops, func() {
			if err := c.Stop(); err != nil {
				fmt.Fprintln(stderr, "switchyard dev: stop postgres:", err)
			}
		})
		dbURL = c.URL("postgres")
	}
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		return err
	}
	pool.Close()

	secret, secretSource, err := devSecret(getenv, *dataDir)
	if err != nil {
		return err
	}
	opsTokens, opsSource, err := devOpsTokens(getenv, *dataDir)
	if err != nil {
		return err
	}
	replay, err := devReplayKeys(getenv, *dataDir)
	if err != nil {
		return err
	}
	over := map[string]string{}
	var emulators []emulator
	var emulatorLines []string
	stateDir := filepath.Join(*dataDir, emulatorStateDir)
	if getenv("HUBSPOT_TOKEN") == "" && getenv("HUBSPOT_TOKEN_FILE") == "" {
		hs := hubspotemu.New(hubspotemu.Options{TenSecondLimit: limit(0), SearchPerSecondLimit: limit(0), UniqueIDs: true})
		hs.FlakyRate(*vendorErrors, vendorErrorSeed)
		kept, err := statefile.Open(filepath.Join(stateDir, "hubspot.json"), hs, 0)
		if err != nil {
			return fmt.Errorf("hubspot emulator: %w", err)
		}
		durable := newDurableEmulator(hs, kept)
		emulators = append(emulators, emulator{name: "hubspot", srv: lifecycle.Harden(&http.Server{Addr: *hubspotAddr, Handler: durable}), kept: kept, durable: durable})
		over["HUBSPOT_TOKEN"] = "pat-dev-switchyard-emulator"
		over["HUBSPOT_BASE_URL"] = "http://" + dialAddr(*hubspotAddr)
		emulatorLines = append(emulatorLines, "  HubSpot:         emulator at http://"+dialAddr(*hubspotAddr)+" (set HUBSPOT_TOKEN for the real one)")
	} else {
		emulatorLines = append(emulatorLines, "  HubSpot:         "+orDefault(getenv("HUBSPOT_BASE_URL"), "https://api.hubapi.com"))
	}
	if getenv("ZENDESK_API_TOKEN") == "" && getenv("ZENDESK_API_TOKEN_FILE") == "" {
		zd, err := zendeskemu.New(zendeskemu.Options{Email: devZendeskEmail, APIToken: devZendeskToken, RateLimit: limit(0), UniqueIDs: true,
			Groups: []zendeskemu.Group{{ID: 1, Name: "Billing"}, {ID: 2, Name: "Customer Success"}}})
		if err != nil {
			return err
		}
		zd.FlakyRate(*vendorErrors, vendorErrorSeed)
		kept, err := statefile.Open(filepath.Join(stateDir, "zendesk.json"), zd, 0)
		if err != nil {
			return fmt.Errorf("zendesk emulator: %w", err)
		}
		durable := newDurableEmulator(zd, kept)
		emulators = append(emulators, emulator{name: "zendesk", srv: lifecycle.Harden(&http.Server{Addr: *zendeskAddr, Handler: durable}), kept: kept, durable: durable})
		over["ZENDESK_BASE_URL"] = "http://" + dialAddr(*zendeskAddr)
		over["ZENDESK_EMAIL"], over["ZENDESK_API_TOKEN"] = devZendeskEmail, devZendeskToken
		over["SUPPORT_GROUPS"] = orDefault(getenv("SUPPORT_GROUPS"), "Billing=1,Customer Success=2")
		emulatorLines = append(emulatorLines, "  Zendesk:         emulator at http://"+dialAddr(*zendeskAddr)+" (set ZENDESK_* for the real one)")
	} else {
		emulatorLines = append(emulatorLines, "  Zendesk:         "+getenv("ZENDESK_BASE_URL"))
	}
	if getenv("SLACK_WEBHOOK_URL") == "" && getenv("SLACK_WEBHOOK_URL_FILE") == "" {
		sl, err := slackemu.New(slackemu.Options{RateLimit: limit(0)})
		if err != nil {
			return err
		}
		emulators = append(emulators, emulator{name: "slack", srv: lifecycle.Harden(&http.Server{Addr: *slackAddr, Handler: slackErrors(sl, *vendorErrors, vendorErrorSeed)})})
		over["SLACK_WEBHOOK_URL"] = "http://" + dialAddr(*slackAddr) + sl.Path()
		emulatorLines = append(emulatorLines, "  Slack:           emulator at http://"+dialAddr(*slackAddr)+" (set SLACK_WEBHOOK_URL for the real one)")
	} else {
		emulatorLines = append(emulatorLines, "  Slack:           alerts to the configured webhook")
	}
	if slices.ContainsFunc(emulators, func(e emulator) bool { return e.kept != nil }) {
		emulatorLines = append(emulatorLines, "  emulator state:  "+stateDir+" (delete to start the emulators empty)")
	}
	env := config.Overlay(config.Overlay(getenv, over), map[string]string{
		"NATS_URL":              natsURL,
		"DATABASE_URL":          dbURL,
		"STRIPE_WEBHOOK_SECRET": secret,
		"SWITCHYARD_ENV":        orDefault(getenv("SWITCHYARD_ENV"), gateway.EnvDevelopment),
		"GATEWAY_ADDR":          *gatewayAddr,
		"GATEWAY_ADMIN_ADDR":    *gatewayAdminAddr,
		"IDENTITY_ADDR":         *identityAddr,
		"CRM_ADDR":              *crmAddr,
		"SUPPORT_ADDR":          *supportAddr,
		"ALERTS_ADDR":           *alertsAddr,
		"PROJECTOR_ADDR":        *projectorAddr,
		"OPS_ADDR":              *opsAddr,
		"GATEWAY_METRICS_URL":   orDefault(getenv("GATEWAY_METRICS_URL"), "http://"+dialAddr(*gatewayAdminAddr)+"/metrics"),
	})
	// The alerts service reads the daily digest from the status API with a
	// read-only token of its own, made up for this run.
	// Alerts link to the console and nowhere else.
	over2 := map[string]string{"SWITCHYARD_OPS_URL": orDefault(getenv("SWITCHYARD_OPS_URL"), "http://"+dialAddr(*opsAddr)),
		"SWITCHYARD_CONSOLE_URL": orDefault(getenv("SWITCHYARD_CONSOLE_URL"), "http://"+dialAddr(*opsAddr))}
	if opsTokens != "" {
		tokens := opsTokens
		if getenv("SWITCHYARD_OPS_TOKEN") == "" && getenv("SWITCHYARD_OPS_TOKEN_FILE") == "" {
			alertsTok := randomHex(24)
			tokens += ",dev-alerts:read:" + alertsTok
			over2["SWITCHYARD_OPS_TOKEN"] = alertsTok
		}
		over2["SWITCHYARD_OPS_TOKENS"] = tokens
	} else if getenv("SWITCHYARD_OPS_TOKEN") == "" && getenv("SWITCHYARD_OPS_TOKEN_FILE") == "" {
		over2["ALERTS_DIGEST_AT"] = orDefault(getenv("ALERTS_DIGEST_AT"), "off")
	}
	env = config.Overlay(config.Overlay(env, over2), replay.everyone)

	// The services only check for their streams, consumers and tables:
	// make them first, with the settings in the environment, as a deploy's
	// `switchyard migrate` does.
	migCfg, err := migration.LoadConfig(as(natsbus.IdentityMigrate, env), false)
	if err != nil {
		return fmt.Errorf("switchyard migrate: %w", err)
	}
	mig, err := migration.Run(ctx, migCfg)
	if err != nil {
		return fmt.Errorf("switchyard migrate: %w", err)
	}
	fmt.Fprintf(stdout, "Migrated NATS and PostgreSQL (switchyard migrate): %s.\n", mig.Summary())

	services := lifecycle.NewGroup(ctx)
	for _, emu := range emulators {
		ln, err := net.Listen("tcp", emu.srv.Addr)
		if err != nil {
			services.Stop()
			return errors.Join(fmt.Errorf("emulator on %s: %w", emu.srv.Addr, err), services.Wait())
		}
		services.Go(emu.name+" emulator", func(ctx context.Context) error {
			err := lifecycle.Serve(ctx, emu.srv, ln, 2*time.Second)
			if emu.kept != nil {
				// Run may have written before the last requests drained.
				err = errors.Join(err, emu.kept.Flush())
			}
			return err
		})
		if emu.kept != nil {
			services.Go(emu.name+" emulator state", emu.kept.Run)
		}
		if emu.durable != nil {
			services.Go(emu.name+" emulator saves", emu.durable.Run)
		}
	}
	services.Go("gateway", func(ctx context.Context) error { return gateway.Run(ctx, as(natsbus.IdentityGateway, env), stderr) })
	services.Go("identity", func(ctx context.Context) error { return identity.Run(ctx, as(natsbus.IdentityIdentity, env), stderr) })
	services.Go("crm", func(ctx context.Context) error { return crm.Run(ctx, as(natsbus.IdentityCRM, env), stderr) })
	services.Go("support", func(ctx context.Context) error { return support.Run(ctx, as(natsbus.IdentitySupport, env), stderr) })
	services.Go("alerts", func(ctx context.Context) error { return alerts.Run(ctx, as(natsbus.IdentityAlerts, env), stderr) })
	services.Go("projector", func(ctx context.Context) error {
		return projector.Run(ctx, as(natsbus.IdentityProjector, config.Overlay(config.Overlay(env, replay.signer), opsLogin)), stderr)
	})

	base, admin := "http://"+dialAddr(*gatewayAddr), "http://"+dialAddr(*gatewayAdminAddr)
	for _, url := range []string{admin + "/readyz", "http://" + dialAddr(*identityAddr) + "/readyz", "http://" + dialAddr(*crmAddr) + "/readyz", "http://" + dialAddr(*supportAddr) + "/readyz", "http://" + dialAddr(*alertsAddr) + "/readyz", "http://" + dialAddr(*projectorAddr) + "/readyz"} {
		if err := waitReady(services.Context(), url, 30*time.Second); err != nil {
			services.Stop()
			return errors.Join(err, services.Wait())
		}
	}
	first := strings.Split(secret, ",")[0]
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
`, base, first, secretSource, admin, admin, dialAddr(*identityAddr), dialAddr(*crmAddr), dialAddr(*supportAddr), dialAddr(*alertsAddr), dialAddr(*projectorAddr), dialAddr(*opsAddr), devTokenShown(opsTokens, opsSource), opsSource, strings.Join(emulatorLines, "\n"), natsURL, natsUsers, config.RedactURL(dbURL), *dataDir, first)

	if err := services.Wait(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Switchyard dev hub stopped.")
	return nil
}

// emulator is one vendor emulator dev serves, and the Keeper of its
// account when it has one to keep.
type emulator struct {
	name    string
	srv     *http.Server
	kept    *statefile.Keeper
	durable *durableEmulator // answers changes once kept has saved them
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

// natsUsersDir is the folder, in the data folder, where `dev` keeps the
// password of each NATS identity of the embedded server, one file per
// identity named after it (a NATS_PASSWORD_FILE), so restarts and the CLI
// (operator) find them.
const natsUsersDir = "nats-users"

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

// cliNATS is how a CLI command logs in to NATS: the credentials in the
// environment (NATS_USER with NATS_PASSWORD[_FILE], or NATS_CREDS), else
// the operator identity the dev hub saved in dataDir, else none.
func cliNATS(getenv func(string) string, dataDir string) ([]nats.Option, error) {
	if getenv("NATS_USER") != "" || getenv("NATS_CREDS") != "" {
		r := config.NewReader(getenv)
		o := natsbus.OptionsFromEnv(r, "switchyard-cli")
		if err := r.Err(); err != nil {
			return nil, err
		}
		return o.AuthOptions(), nil
	}
	path := filepath.Join(dataDir, natsUsersDir, natsbus.IdentityOperator)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no dev hub here: connect without credentials
	}
	if err != nil {
		return nil, fmt.Errorf("the dev hub's operator NATS identity: %w", err)
	}
	return []nats.Option{nats.UserInfo(natsbus.IdentityOperator, strings.TrimSpace(string(b))),
		nats.CustomInboxPrefix(natsbus.InboxPrefix(natsbus.IdentityOperator))}, nil
}

// replayKeyFile is where `dev` keeps the operator's replay signing key
// (an Ed25519 seed, hex), in its data folder: the projector signs the
// replays of its status API and console with it, `dlq replay --direct`
// too, and every consumer checks them against its public key.
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

// cliReplayKey is the key `dlq replay --direct` signs with: the
// environment's SWITCHYARD_REPLAY_SIGNING_KEY[_FILE], else the dev hub's,
// else none (unsigned: consumers with replay keys handle it as an
// ordinary message).
func cliReplayKey(getenv func(string) string, dataDir string) (ed25519.PrivateKey, error) {
	if getenv("SWITCHYARD_REPLAY_SIGNING_KEY") != "" || getenv("SWITCHYARD_REPLAY_SIGNING_KEY_FILE") != "" {
		r := config.NewReader(getenv)
		key := consumer.ReplaySigningKeyFromEnv(r)
		return key, r.Err()
	}
	b, err := os.ReadFile(filepath.Join(dataDir, replayKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the dev hub's replay signing key: %w", err)
	}
	return consumer.ParseReplaySeed(string(b))
}

// randomHex is n random bytes in hex; crypto/rand never fails on
// supported platforms.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func waitReady(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	c := http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", url, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// dialAddr turns a listen address into one to connect to: ":8080" and
// "0.0.0.0:8080" are reached on 127.0.0.1.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
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
