package deploy_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/services/alerts"
	"github.com/switchyard/switchyard/services/crm"
	"github.com/switchyard/switchyard/services/gateway"
	"github.com/switchyard/switchyard/services/identity"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/support"
	"github.com/switchyard/switchyard/services/switchyard/migration"
)

// repoRoot is the repository root relative to this package's directory, which is
// where `go test` runs the test binary.
const repoRoot = "../../.."

// testWebhookSecret stands in for the Stripe signing secret an operator exports
// before `docker compose up`.
const testWebhookSecret = "whsec_composetest0123456789abcdef"

// loadCompose loads compose.yaml as `docker compose` would, with env as the only
// environment: the developer's shell does not leak into the result.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	return loadComposeProfiles(t, env)
}

// loadComposeProfiles is loadCompose with profiles enabled, as
// `docker compose --profile <p> up` does.
func loadComposeProfiles(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatalf("resolve repository root: %v", err)
	}
	file := filepath.Join(root, "compose.yaml")
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: types.Mapping(env),
	}
	project, err := loader.LoadWithContext(t.Context(), details, func(o *loader.Options) {
		o.SetProjectName("switchyard", true)
		o.Profiles = profiles
	})
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return project
}

// defaultEnv is the environment of
// `STRIPE_WEBHOOK_SECRET=whsec_... HUBSPOT_TOKEN=pat-... POSTGRES_PASSWORD=... docker compose up`.
func defaultEnv() map[string]string {
	return map[string]string{"STRIPE_WEBHOOK_SECRET": testWebhookSecret, "POSTGRES_PASSWORD": "compose-test-password", "HUBSPOT_TOKEN": "pat-compose-test",
		"ZENDESK_BASE_URL": "https://acme.zendesk.com", "ZENDESK_EMAIL": "agent@acme.example", "ZENDESK_API_TOKEN": "zd-compose-test",
		"SUPPORT_GROUPS": "Billing=123,Customer Success=456", "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T/B/X",
		"SWITCHYARD_OPS_TOKENS": "founder:read+operate:compose-test-token-0123456789,alerts:read:compose-alerts-token-0123456789",
		"ALERTS_OPS_TOKEN":      "compose-alerts-token-0123456789",
		"NATS_PASSWORD_GATEWAY": "nats-gateway-pw", "NATS_PASSWORD_IDENTITY": "nats-identity-pw", "NATS_PASSWORD_CRM": "nats-crm-pw",
		"NATS_PASSWORD_SUPPORT": "nats-support-pw", "NATS_PASSWORD_ALERTS": "nats-alerts-pw", "NATS_PASSWORD_PROJECTOR": "nats-projector-pw",
		"NATS_PASSWORD_OPERATOR": "nats-operator-pw", "NATS_PASSWORD_MIGRATE": "nats-migrate-pw",
		"SWITCHYARD_REPLAY_SIGNING_KEY": hex.EncodeToString(testReplayKey.Seed()),
		"SWITCHYARD_REPLAY_KEYS":        hex.EncodeToString(testReplayKey.Public().(ed25519.PublicKey)),
		"GRAFANA_ADMIN_PASSWORD":        "compose-test-grafana-admin"}
}

// testReplayKey stands in for the operator's replay key pair (switchyard replay-key).
var testReplayKey = ed25519.NewKeyFromSeed([]byte("compose-test-replay-key-32-bytes"))

// TestComposeRequiresPostgresPassword: no default database password ships.
func TestComposeRequiresPostgresPassword(t *testing.T) {
	env := defaultEnv()
	delete(env, "POSTGRES_PASSWORD")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	_, err = loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "compose.yaml")}},
		Environment: types.Mapping(env),
	}, func(o *loader.Options) { o.SetProjectName("switchyard", true) })
	if err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Fatalf("load without POSTGRES_PASSWORD: %v, want an error naming it", err)
	}
}

// TestComposeBindsInternalPortsToLoopback: NATS (which accepts unsigned
// publishes), Jaeger, Prometheus and Grafana are not published on every
// interface.
func TestComposeBindsInternalPortsToLoopback(t *testing.T) {
	project := loadCompose(t, defaultEnv())
	for _, name := range []string{"nats", "jaeger", "prometheus", "grafana"} {
		for _, p := range mustService(t, project, name).Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, want 127.0.0.1", name, p.Published, p.HostIP)
			}
		}
	}
}

// mustService returns the named service or fails the test.
func mustService(t *testing.T, project *types.Project, name string) types.ServiceConfig {
	t.Helper()
	svc, err := project.GetService(name)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return svc
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())

	got := project.ServiceNames()
	for _, want := range []string{"nats", "postgres", "jaeger", "migrate", "gateway", "identity", "crm", "support", "alerts", "projector",
		"nats-exporter", "prometheus", "grafana"} {
		if !slices.Contains(got, want) {
			t.Errorf("compose.yaml services = %v, missing %q", got, want)
		}
	}
}

func TestComposeImagesPinned(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())

	for _, name := range project.ServiceNames() {
		svc := mustService(t, project, name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if svc.Image == "" {
				if svc.Build == nil {
					t.Fatal("service has neither image nor build")
				}
				return // built from this repository
			}
			ref, err := reference.ParseNormalizedNamed(svc.Image)
			if err != nil {
				t.Fatalf("image %q: %v", svc.Image, err)
			}
			if _, ok := ref.(reference.Digested); ok {
				return
			}
			tagged, ok := ref.(reference.Tagged)
			if !ok {
				t.Fatalf("image %q has no tag: pin a version so deployments are reproducible", svc.Image)
			}
			if tagged.Tag() == "latest" {
				t.Fatalf("image %q uses the latest tag: pin a version so deployments are reproducible", svc.Image)
			}
			// A version, not a moving name such as alpine or stable.
			if !versionTag.MatchString(tagged.Tag()) {
				t.Fatalf("image %q: tag %q is no version: pin one so deployments are reproducible", svc.Image, tagged.Tag())
			}
		})
	}
}

// versionTag is a pinned image tag: a version number, optionally v-prefixed
// and suffixed (15-alpine, 2.15.3-alpine, v3.16.0).
var versionTag = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)*(-[a-z0-9.]+)?$`)

func TestComposeHealthyDependenciesHaveHealthchecks(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())

	for _, name := range project.ServiceNames() {
		svc := mustService(t, project, name)
		for dep, cond := range svc.DependsOn {
			if _, off := project.DisabledServices[dep]; cond.Condition != types.ServiceConditionHealthy || (off && !cond.Required) {
				continue // an optional dependency on a profile's service that is off
			}
			d := mustService(t, project, dep)
			if d.HealthCheck == nil || d.HealthCheck.Disable || len(d.HealthCheck.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck, so it never becomes healthy", name, dep, dep)
			}
		}
	}
}

func TestComposeNATSPersistsJetStream(t *testing.T) {
	t.Parallel()
	nats := mustService(t, loadCompose(t, defaultEnv()), "nats")

	// The store directory must be the mounted volume, or streams vanish with the
	// container; deploy/nats/nats.conf puts it there (TestNATSConfig).
	const storeDir = "/data"
	mounted := slices.ContainsFunc(nats.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == storeDir
	})
	if !mounted {
		t.Errorf("nats volumes = %+v, want a named volume at %s", nats.Volumes, storeDir)
	}
}

func TestComposeGateway(t *testing.T) {
	t.Parallel()
	gw := mustService(t, loadCompose(t, defaultEnv()), "gateway")

	t.Run("build", func(t *testing.T) {
		t.Parallel()
		if gw.Build == nil {
			t.Fatal("gateway has no build section")
		}
		root, err := filepath.Abs(repoRoot)
		if err != nil {
			t.Fatal(err)
		}
		// The Dockerfile copies platform/ and proto/, so the context must be the
		// repository root, not the service directory.
		if gw.Build.Context != root {
			t.Errorf("build context = %s, want the repository root %s", gw.Build.Context, root)
		}
		dockerfile := gw.Build.Dockerfile
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(gw.Build.Context, dockerfile)
		}
		if _, err := os.Stat(dockerfile); err != nil {
			t.Errorf("build dockerfile: %v", err)
		}
	})

	t.Run("depends on healthy nats", func(t *testing.T) {
		t.Parallel()
		dep, ok := gw.DependsOn["nats"]
		if !ok {
			t.Fatalf("gateway depends_on = %v, want nats", gw.DependsOn)
		}
		if got, want := dep.Condition, types.ServiceConditionHealthy; got != want {
			t.Errorf("depends_on nats condition = %q, want %q", got, want)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		t.Parallel()
		hc := gw.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 {
			t.Fatalf("gateway healthcheck = %+v, want one", hc)
		}
		// The image is distroless: there is no shell for CMD-SHELL to run in.
		if got, want := hc.Test[0], "CMD"; got != want {
			t.Errorf("healthcheck test = %q, want exec form %q (the image has no shell)", hc.Test, want)
		}
	})

	t.Run("only the webhook port published", func(t *testing.T) {
		t.Parallel()
		if len(gw.Ports) != 1 || gw.Ports[0].Target != 8080 || gw.Ports[0].Published != "8080" {
			t.Errorf("gateway ports = %+v, want 8080:8080 and nothing else", gw.Ports)
		}
	})

	// The admin listener (readiness, metrics, webhook-health) is set, apart
	// from the webhook's, and never published; the projector reads the
	// gateway's metrics there.
	t.Run("admin listener set and not published", func(t *testing.T) {
		t.Parallel()
		admin := gw.Environment["GATEWAY_ADMIN_ADDR"]
		if admin == nil || *admin == "" {
			t.Fatal("gateway sets no GATEWAY_ADMIN_ADDR: outside development it refuses to start without one")
		}
		_, port, err := net.SplitHostPort(*admin)
		if err != nil {
			t.Fatalf("GATEWAY_ADMIN_ADDR=%q: %v", *admin, err)
		}
		if pub := gw.Environment["GATEWAY_ADDR"]; pub != nil && *pub == *admin {
			t.Fatalf("GATEWAY_ADMIN_ADDR = GATEWAY_ADDR = %q", *admin)
		}
		for _, p := range gw.Ports {
			if strconv.Itoa(int(p.Target)) == port {
				t.Errorf("gateway publishes its admin port %s (%+v): readiness, metrics and webhook-health must not leave the stack's network", port, p)
			}
		}
		metrics := mustService(t, loadCompose(t, defaultEnv()), "projector").Environment["GATEWAY_METRICS_URL"]
		if metrics == nil {
			t.Fatal("projector sets no GATEWAY_METRICS_URL")
		}
		u, err := url.Parse(*metrics)
		if err != nil || u.Host != net.JoinHostPort("gateway", port) || u.Path != "/metrics" {
			t.Errorf("projector GATEWAY_METRICS_URL = %q, want http://gateway:%s/metrics (the admin listener)", *metrics, port)
		}
	})

	t.Run("stop grace period", func(t *testing.T) {
		t.Parallel()
		// Shutdown drains intake and in-flight publishes; Docker's default 10s
		// would SIGKILL a slow drain.
		const want = 30 * time.Second
		if gw.StopGracePeriod == nil || time.Duration(*gw.StopGracePeriod) < want {
			t.Errorf("stop_grace_period = %v, want at least %v", gw.StopGracePeriod, want)
		}
	})
}

// TestComposeGatewayConfigContract starts the gateway's configuration loader on
// the environment compose gives the container: the loader must accept it, and
// compose must set nothing the loader does not read (a misspelt or stale name
// would otherwise be silently ignored in production).
func TestComposeGatewayConfigContract(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		switchyardEnv string // "" leaves SWITCHYARD_ENV unset, so compose's default applies
	}{
		{name: "default"},
		{name: "development", switchyardEnv: "development"},
		{name: "staging", switchyardEnv: "staging"},
		{name: "production", switchyardEnv: "production"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := defaultEnv()
			if tt.switchyardEnv != "" {
				env["SWITCHYARD_ENV"] = tt.switchyardEnv
			}
			project := loadCompose(t, env)
			gw := mustService(t, project, "gateway")

			for name, value := range gw.Environment {
				if value != nil && strings.Contains(*value, testWebhookSecret) {
					t.Errorf("gateway environment %s carries the webhook secret inline; mount it as a secret and set %s_FILE", name, name)
				}
			}

			containerEnv := containerEnvironment(t, project, gw)
			rec := config.NewRecorder(config.MapEnv(containerEnv))
			if _, err := gateway.LoadConfig(rec.Getenv); err != nil {
				t.Fatalf("gateway.LoadConfig on the compose environment: %v", err)
			}

			read := rec.Names()
			for _, name := range slices.Sorted(maps.Keys(gw.Environment)) {
				if strings.HasPrefix(name, "OTEL_") {
					continue // read by the OpenTelemetry SDK, not by LoadConfig
				}
				if !slices.Contains(read, name) {
					t.Errorf("compose.yaml sets %s for the gateway, but gateway.LoadConfig never reads it (it reads %v)", name, read)
				}
			}
		})
	}
}

// containerEnvironment returns the environment svc's container would see.
// Variables compose leaves unresolved are unset. A container finds its secrets
// under /run/secrets, which does not exist here, so every *_FILE variable must
// name a secret mounted into svc, and is redirected to a temporary file holding
// that secret's content.
func containerEnvironment(t *testing.T, project *types.Project, svc types.ServiceConfig) map[string]string {
	t.Helper()

	mounted := make(map[string]string) // path in the container -> content
	for _, ref := range svc.Secrets {
		def, ok := project.Secrets[ref.Source]
		if !ok {
			t.Fatalf("service %s mounts undefined secret %q", svc.Name, ref.Source)
		}
		target := ref.Target
		if target == "" {
			target = ref.Source
		}
		if !path.IsAbs(target) {
			target = path.Join("/run/secrets", target)
		}
		content := def.Content
		if def.File != "" {
			b, err := os.ReadFile(def.File)
			if err != nil {
				t.Fatalf("secret %s: %v", ref.Source, err)
			}
			content = string(b)
		}
		mounted[target] = content
	}

	dir := t.TempDir()
	env := make(map[string]string, len(svc.Environment))
	for name, value := range svc.Environment {
		if value == nil {
			continue
		}
		v := *value
		if strings.HasSuffix(name, "_FILE") {
			content, ok := mounted[v]
			if !ok {
				t.Errorf("%s=%s: no secret is mounted at that path in service %s", name, v, svc.Name)
				continue
			}
			if content == "" {
				t.Errorf("%s=%s: the secret is empty", name, v)
			}
			file := filepath.Join(dir, strings.TrimSuffix(name, "_FILE"))
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			v = file
		}
		env[name] = v
	}
	return env
}

// TestComposeServiceConfigContracts holds every built service to the same
// contract as the gateway: its loader accepts the compose environment and
// compose sets nothing the loader does not read; each is built from the
// shared Dockerfile for its own SERVICE and health-checked.
func TestComposeServiceConfigContracts(t *testing.T) {
	t.Parallel()
	loaders := serviceLoaders()
	loaders["projector"] = func(g func(string) string) error {
		c, err := projector.LoadConfig(g)
		if err == nil && c.Tokens.Len() != 2 {
			err = fmt.Errorf("ops tokens from the compose secret: %d, want 2", c.Tokens.Len())
		}
		if err == nil && (!c.HasOpsNATS || c.OpsNATS.User != "operator" || c.OpsNATS.Password.Reveal() != "nats-operator-pw") {
			err = fmt.Errorf("the dead-letter actions' NATS login: %t %q, want operator with its password secret", c.HasOpsNATS, c.OpsNATS.User)
		}
		return err
	}
	project := loadCompose(t, defaultEnv())
	for name, load := range loaders {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			svc := mustService(t, project, name)
			if svc.Build == nil || svc.Build.Args["SERVICE"] == nil || *svc.Build.Args["SERVICE"] != name {
				t.Errorf("build = %+v, want services/Dockerfile with SERVICE=%s", svc.Build, name)
			}
			if svc.HealthCheck == nil || len(svc.HealthCheck.Test) == 0 || svc.HealthCheck.Test[0] != "CMD" {
				t.Errorf("healthcheck = %+v, want an exec-form check", svc.HealthCheck)
			}
			rec := config.NewRecorder(config.MapEnv(containerEnvironment(t, project, svc)))
			if err := load(rec.Getenv); err != nil {
				t.Fatalf("%s config on the compose environment: %v", name, err)
			}
			for _, v := range slices.Sorted(maps.Keys(svc.Environment)) {
				if !strings.HasPrefix(v, "OTEL_") && !slices.Contains(rec.Names(), v) {
					t.Errorf("compose.yaml sets %s for %s, which its config never reads", v, name)
				}
			}
		})
	}
}

// streamSettings are the variables that set the streams: `switchyard
// migrate` applies them, so only the migrate service may carry them.
var streamSettings = []string{"NATS_STREAM_REPLICAS", "NATS_DUPLICATE_WINDOW", "NATS_STREAM_MAX_AGE", "NATS_DLQ_MAX_MB"}

// TestComposeMigrateRunsFirst: a one-shot migrate service, the CLI from the
// same Dockerfile, runs `switchyard migrate` once NATS and PostgreSQL are
// healthy, and every service waits for it to succeed — the services only
// check for their streams, consumers and tables, and refuse to start
// without them.
func TestComposeMigrateRunsFirst(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())
	m := mustService(t, project, "migrate")
	if m.Build == nil || m.Build.Args["SERVICE"] == nil || *m.Build.Args["SERVICE"] != "switchyard" {
		t.Errorf("migrate build = %+v, want services/Dockerfile with SERVICE=switchyard (the CLI)", m.Build)
	}
	if gw := mustService(t, project, "gateway"); m.Build != nil && gw.Build != nil && m.Build.Dockerfile != gw.Build.Dockerfile {
		t.Errorf("migrate is built from %s, the services from %s: want the one Dockerfile", m.Build.Dockerfile, gw.Build.Dockerfile)
	}
	if !slices.Equal(m.Command, types.ShellCommand{"migrate"}) {
		t.Errorf("migrate command = %q, want [migrate] (the image's entrypoint is the CLI)", m.Command)
	}
	for _, dep := range []string{"nats", "postgres"} {
		if d, ok := m.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("migrate depends_on %s = %+v, want condition %s", dep, d, types.ServiceConditionHealthy)
		}
	}
	if m.Restart != "" && m.Restart != types.RestartPolicyNo {
		t.Errorf("migrate restart = %q: a one-shot step that failed must leave the services waiting, not run again and again", m.Restart)
	}
	var built []string
	for _, name := range project.ServiceNames() {
		svc := mustService(t, project, name)
		if svc.Build == nil || name == "migrate" {
			continue
		}
		built = append(built, name)
		if d, ok := svc.DependsOn["migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s depends_on migrate = %+v, want condition %s: it would start before its streams exist", name, d, types.ServiceConditionCompletedSuccessfully)
		}
	}
	if !slices.Equal(built, []string{"alerts", "crm", "gateway", "identity", "projector", "support"}) {
		t.Errorf("services built beside migrate = %v, want the six", built)
	}
	// The same broker and database as the services.
	for name, of := range map[string]string{"NATS_URL": "gateway", "DATABASE_URL": "identity"} {
		got, want := m.Environment[name], mustService(t, project, of).Environment[name]
		if got == nil || want == nil || *got != *want {
			t.Errorf("migrate %s = %v, %s's = %v: want the same", name, deref(got), of, deref(want))
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "(unset)"
	}
	return *s
}

// TestComposeStreamSettingsOnlyOnMigrate: the streams' settings are set on
// the migrate service and no other — a service's NATS_STREAM_MAX_AGE once
// re-applied itself at every start and could purge Stripe history — and an
// operator's NATS_STREAM_MAX_AGE reaches migrate.
func TestComposeStreamSettingsOnlyOnMigrate(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())
	for _, name := range project.ServiceNames() {
		if name == "migrate" {
			continue
		}
		for _, v := range streamSettings {
			if _, ok := mustService(t, project, name).Environment[v]; ok {
				t.Errorf("%s sets %s: stream settings belong to the migrate service alone", name, v)
			}
		}
	}
	m := mustService(t, project, "migrate")
	for _, v := range []string{"NATS_STREAM_REPLICAS", "NATS_STREAM_MAX_AGE"} {
		if m.Environment[v] == nil {
			t.Errorf("migrate sets no %s", v)
		}
	}
	env := defaultEnv()
	env["NATS_STREAM_MAX_AGE"] = "720h"
	if got := mustService(t, loadCompose(t, env), "migrate").Environment["NATS_STREAM_MAX_AGE"]; got == nil || *got != "720h" {
		t.Errorf("with NATS_STREAM_MAX_AGE=720h exported, migrate's is %s", deref(got))
	}
}

// TestComposeMigrateConfigContract: migrate's configuration loader accepts
// the environment compose gives it, and compose sets nothing it does not
// read.
func TestComposeMigrateConfigContract(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())
	m := mustService(t, project, "migrate")
	rec := config.NewRecorder(config.MapEnv(containerEnvironment(t, project, m)))
	if _, err := migration.LoadConfig(rec.Getenv, false); err != nil {
		t.Fatalf("migration.LoadConfig on the compose environment: %v", err)
	}
	for _, v := range slices.Sorted(maps.Keys(m.Environment)) {
		if !slices.Contains(rec.Names(), v) {
			t.Errorf("compose.yaml sets %s for migrate, which its config never reads", v)
		}
	}
}

// natsServerModule is the module of the NATS server the tests embed
// (platform/devkit/natsembed, testkit, and this package's nats_test.go).
const natsServerModule = "github.com/nats-io/nats-server/v2"

// embeddedNATSVersion is the nats-server version the tests embed: the
// highest one the workspace's go.mod files require (go.work's modules; with
// module graph pruning each lists every module its packages build with, so
// the highest is the version Go selects). A test binary carries no module
// build information, so the files are read.
func embeddedNATSVersion(t *testing.T) (major, minor, patch int) {
	t.Helper()
	work, err := os.ReadFile(filepath.Join(repoRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	uses := workUse.FindAllSubmatch(work, -1)
	if len(uses) == 0 {
		t.Fatal("go.work uses no module")
	}
	best := [3]int{-1}
	var from []string
	for _, u := range uses {
		file := filepath.Join(repoRoot, string(u[1]), "go.mod")
		mod, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		m := natsRequire.FindSubmatch(mod)
		if m == nil {
			continue
		}
		from = append(from, file)
		v := [3]int{atoi(t, string(m[1])), atoi(t, string(m[2])), atoi(t, string(m[3]))}
		if slices.Compare(v[:], best[:]) > 0 {
			best = v
		}
	}
	if best[0] < 0 {
		t.Fatalf("no go.mod in go.work requires %s", natsServerModule)
	}
	if !slices.ContainsFunc(from, func(f string) bool { return strings.HasSuffix(filepath.ToSlash(f), "platform/devkit/go.mod") }) {
		t.Errorf("platform/devkit/go.mod (natsembed, the embedded server) no longer requires %s: update this test", natsServerModule)
	}
	return best[0], best[1], best[2]
}

var (
	workUse     = regexp.MustCompile(`(?m)^\s*(\./[^\s)]+)\s*$`)
	natsRequire = regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/nats-io/nats-server/v2 v([0-9]+)\.([0-9]+)\.([0-9]+)\b`)
	// natsImageTag is the official image's tag: major.minor[.patch][-alpine].
	natsImageTag = regexp.MustCompile(`^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?(-alpine)?$`)
)

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// imageTag returns image's repository (normalized, e.g. docker.io/library/nats)
// and tag.
func imageTag(t *testing.T, image string) (string, string) {
	t.Helper()
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		t.Fatalf("image %q: %v", image, err)
	}
	tagged, ok := ref.(reference.Tagged)
	if !ok {
		t.Fatalf("image %q has no tag", image)
	}
	return ref.Name(), tagged.Tag()
}

// TestComposeNATSImageMatchesEmbeddedServer: compose runs the nats-server
// release the tests run — the official image of the embedded server's minor
// (and patch, when the tag names one) — on the single server and on every
// node of the cluster profile.
func TestComposeNATSImageMatchesEmbeddedServer(t *testing.T) {
	t.Parallel()
	major, minor, patch := embeddedNATSVersion(t)
	project := loadComposeProfiles(t, defaultEnv(), "cluster")
	for _, name := range []string{"nats", "nats-1", "nats-2", "nats-3"} {
		repo, tag := imageTag(t, mustService(t, project, name).Image)
		if repo != "docker.io/library/nats" {
			t.Errorf("%s runs %s, want the official nats image", name, repo)
			continue
		}
		m := natsImageTag.FindStringSubmatch(tag)
		if m == nil {
			t.Errorf("%s: nats tag %q, want <major>.<minor>[.<patch>]-alpine", name, tag)
			continue
		}
		if atoi(t, m[1]) != major || atoi(t, m[2]) != minor || (m[3] != "" && atoi(t, m[3]) != patch) {
			t.Errorf("%s runs nats:%s, the tests embed nats-server v%d.%d.%d: use nats:%d.%d.%d-alpine", name, tag, major, minor, patch, major, minor, patch)
		}
	}
}

// jaegerModule is Jaeger in scripts/jaeger/go.mod, the binary `make e2e`
// builds; module v1.N.p is the Jaeger v2 release 2.(N-63).p (v1.63.0 was
// v2.0.0, and each release has moved both on by one since).
var jaegerModule = regexp.MustCompile(`(?m)^\s*github\.com/jaegertracing/jaeger v1\.([0-9]+)\.([0-9]+)\b`)

// TestComposeJaeger: compose runs the Jaeger v2 release the e2e test builds,
// from its configuration file in deploy/jaeger, receiving OTLP over gRPC and
// HTTP and serving the UI on the ports compose publishes; every service
// exports to it.
func TestComposeJaeger(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())
	j := mustService(t, project, "jaeger")

	mod, err := os.ReadFile(filepath.Join(repoRoot, "scripts/jaeger/go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := jaegerModule.FindSubmatch(mod)
	if m == nil {
		t.Fatal("scripts/jaeger/go.mod requires no github.com/jaegertracing/jaeger v1.x")
	}
	want := fmt.Sprintf("2.%d.%s", atoi(t, string(m[1]))-63, m[2])
	if repo, tag := imageTag(t, j.Image); repo != "docker.io/jaegertracing/jaeger" || tag != want {
		t.Errorf("jaeger image %s:%s, want jaegertracing/jaeger:%s (the v2 release of scripts/jaeger's v1.%s.%s)", repo, tag, want, m[1], m[2])
	}

	configPath := ""
	for i, arg := range j.Command {
		if arg == "--config" && i+1 < len(j.Command) {
			configPath = j.Command[i+1]
		}
	}
	host := hostPath(t, j, configPath)
	if host == "" {
		t.Fatalf("jaeger command %q: want --config naming a file mounted from the repository", j.Command)
	}
	var cfg struct {
		Receivers struct {
			OTLP struct {
				Protocols struct {
					GRPC struct{ Endpoint string } `yaml:"grpc"`
					HTTP struct{ Endpoint string } `yaml:"http"`
				} `yaml:"protocols"`
			} `yaml:"otlp"`
		} `yaml:"receivers"`
		Extensions struct {
			Query struct {
				HTTP struct{ Endpoint string } `yaml:"http"`
			} `yaml:"jaeger_query"`
		} `yaml:"extensions"`
	}
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	listens := map[string]string{"OTLP/gRPC": cfg.Receivers.OTLP.Protocols.GRPC.Endpoint,
		"OTLP/HTTP": cfg.Receivers.OTLP.Protocols.HTTP.Endpoint, "UI": cfg.Extensions.Query.HTTP.Endpoint}
	for what, port := range map[string]string{"OTLP/gRPC": "4317", "OTLP/HTTP": "4318", "UI": "16686"} {
		h, p, err := net.SplitHostPort(listens[what])
		if err != nil || p != port || (h != "0.0.0.0" && h != "") {
			t.Errorf("%s: %s listens on %q, want 0.0.0.0:%s (reachable on the stack's network)", host, what, listens[what], port)
		}
	}
	published := map[uint32]bool{}
	for _, p := range j.Ports {
		published[p.Target] = true
	}
	if !published[16686] || !published[4318] {
		t.Errorf("jaeger publishes %+v, want the UI (16686) and OTLP/HTTP (4318)", j.Ports)
	}
	for _, name := range []string{"gateway", "identity", "crm", "support", "alerts", "projector"} {
		if got := mustService(t, project, name).Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; got == nil || *got != "http://jaeger:4318" {
			t.Errorf("%s OTEL_EXPORTER_OTLP_ENDPOINT = %s, want http://jaeger:4318 (Jaeger's OTLP/HTTP receiver)", name, deref(got))
		}
	}
}

// hostPath returns the repository file or folder svc mounts at target (or
// at a folder holding target), or "".
func hostPath(t *testing.T, svc types.ServiceConfig, target string) string {
	t.Helper()
	if target == "" {
		return ""
	}
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if v.Target == target {
			return v.Source
		}
		if rel, ok := strings.CutPrefix(target, v.Target+"/"); ok {
			return filepath.Join(v.Source, filepath.FromSlash(rel))
		}
	}
	return ""
}

// TestComposePrometheus: Prometheus runs deploy/prometheus/prometheus.yml
// (whose targets and rules TestPrometheusConfig checks), keeps its data on a
// volume and is health-checked, so Grafana starts after it.
func TestComposePrometheus(t *testing.T) {
	t.Parallel()
	p := mustService(t, loadCompose(t, defaultEnv()), "prometheus")
	if repo, tag := imageTag(t, p.Image); repo != "docker.io/prom/prometheus" || !strings.HasPrefix(tag, "v3.") {
		t.Errorf("prometheus image %s:%s, want prom/prometheus:v3.x", repo, tag)
	}
	var config string
	for _, arg := range p.Command {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			config = v
		}
	}
	abs, err := filepath.Abs(prometheusPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := hostPath(t, p, config); got != abs {
		t.Errorf("prometheus --config.file=%s is %q on the host, want %s", config, got, abs)
	}
	// rules.yml beside it: Prometheus resolves rule_files against the
	// config's folder, so the folder is mounted, not the file alone.
	rules, err := filepath.Abs(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := hostPath(t, p, path.Join(path.Dir(config), filepath.Base(rulesPath))); got != rules {
		t.Errorf("prometheus sees %s as %q, want %s", path.Join(path.Dir(config), filepath.Base(rulesPath)), got, rules)
	}
	persisted := slices.ContainsFunc(p.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == "/prometheus"
	})
	if !persisted {
		t.Errorf("prometheus volumes = %+v, want a named volume at /prometheus", p.Volumes)
	}
	if p.HealthCheck == nil || len(p.HealthCheck.Test) == 0 {
		t.Error("prometheus has no healthcheck")
	}
}

// grafanaProvisioning is the part of a Grafana provisioning file this test
// reads (datasources or dashboard providers).
type grafanaProvisioning struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
	Providers []struct {
		Name                  string `yaml:"name"`
		Type                  string `yaml:"type"`
		Folder                string `yaml:"folder"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

// TestComposeGrafana: Grafana is provisioned from the repository — a
// Prometheus datasource pointing at compose's prometheus service, and a
// file provider loading the dashboard TestGrafanaDashboard checks — lets
// anonymous users view only, and takes the admin's password from a secret.
func TestComposeGrafana(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())
	g := mustService(t, project, "grafana")
	if repo, tag := imageTag(t, g.Image); repo != "docker.io/grafana/grafana" || !regexp.MustCompile(`^1[0-9]\.[0-9]+\.[0-9]+$`).MatchString(tag) {
		t.Errorf("grafana image %s:%s, want grafana/grafana:1x.y.z", repo, tag)
	}

	provisioning := hostPath(t, g, "/etc/grafana/provisioning")
	if provisioning == "" {
		t.Fatal("grafana mounts nothing at /etc/grafana/provisioning")
	}
	read := func(t *testing.T, kind string) []grafanaProvisioning {
		t.Helper()
		dir := filepath.Join(provisioning, kind)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("grafana provisioning: %v", err)
		}
		var out []grafanaProvisioning
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); ext != ".yml" && ext != ".yaml" {
				continue
			}
			var p grafanaProvisioning
			decodeYAML(t, filepath.Join(dir, e.Name()), &p)
			if p.APIVersion != 1 {
				t.Errorf("%s/%s: apiVersion %d, want 1", kind, e.Name(), p.APIVersion)
			}
			out = append(out, p)
		}
		if len(out) == 0 {
			t.Fatalf("no provisioning file in %s", dir)
		}
		return out
	}

	t.Run("datasource", func(t *testing.T) {
		prom := mustService(t, project, "prometheus")
		found := false
		for _, f := range read(t, "datasources") {
			for _, ds := range f.Datasources {
				if ds.Type != "prometheus" {
					continue
				}
				found = true
				u, err := url.Parse(ds.URL)
				if err != nil {
					t.Fatalf("datasource %s: %v", ds.Name, err)
				}
				listens := slices.ContainsFunc(prom.Ports, func(p types.ServicePortConfig) bool { return strconv.Itoa(int(p.Target)) == u.Port() })
				if u.Hostname() != "prometheus" || !listens {
					t.Errorf("datasource %s url %s, want compose's prometheus service on a port it listens on (%+v)", ds.Name, ds.URL, prom.Ports)
				}
				if !ds.IsDefault {
					t.Errorf("datasource %s is not the default: the dashboard's $datasource variable would not pick it", ds.Name)
				}
			}
		}
		if !found {
			t.Error("no prometheus datasource is provisioned")
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		want, err := filepath.Abs(dashboardPath)
		if err != nil {
			t.Fatal(err)
		}
		loaded := false
		for _, f := range read(t, "dashboards") {
			for _, p := range f.Providers {
				if p.Type != "file" {
					continue
				}
				// The provider loads every JSON file in its folder: the
				// dashboard must be mounted there.
				for _, v := range g.Volumes {
					if v.Type == types.VolumeTypeBind && path.Dir(v.Target) == path.Clean(p.Options.Path) && v.Source == want {
						loaded = true
					}
				}
			}
		}
		if !loaded {
			t.Errorf("no file provider's folder holds %s (grafana volumes %+v)", dashboardPath, g.Volumes)
		}
		if d := loadDashboard(t); d.UID != "switchyard" {
			t.Errorf("dashboard uid %q", d.UID)
		}
	})

	t.Run("access", func(t *testing.T) {
		env := func(k string) string { return deref(g.Environment[k]) }
		if _, set := g.Environment["GF_SECURITY_ADMIN_PASSWORD"]; set {
			t.Error("GF_SECURITY_ADMIN_PASSWORD is set inline: give it as GF_SECURITY_ADMIN_PASSWORD__FILE from a secret")
		}
		file := env("GF_SECURITY_ADMIN_PASSWORD__FILE")
		mounted := slices.ContainsFunc(g.Secrets, func(s types.ServiceSecretConfig) bool {
			return path.Join("/run/secrets", s.Source) == file || s.Target == file
		})
		if !mounted {
			t.Errorf("GF_SECURITY_ADMIN_PASSWORD__FILE=%s names no mounted secret", file)
		}
		if env("GF_AUTH_ANONYMOUS_ENABLED") == "true" && env("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer" {
			t.Errorf("anonymous users get role %q, want Viewer", env("GF_AUTH_ANONYMOUS_ORG_ROLE"))
		}
		for _, p := range g.Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("grafana publishes %s on %q, want 127.0.0.1", p.Published, p.HostIP)
			}
		}
	})

	// The password is the operator's GRAFANA_ADMIN_PASSWORD and nothing else:
	// unset, the secret is empty (Grafana would refuse to log the admin in),
	// never a default written in the file.
	t.Run("no default password", func(t *testing.T) {
		for _, set := range []bool{true, false} {
			env := defaultEnv()
			if !set {
				delete(env, "GRAFANA_ADMIN_PASSWORD")
			}
			def, ok := loadCompose(t, env).Secrets["grafana_admin_password"]
			if !ok {
				t.Fatal("no grafana_admin_password secret")
			}
			if want := env["GRAFANA_ADMIN_PASSWORD"]; def.Environment != "GRAFANA_ADMIN_PASSWORD" || def.File != "" || def.Content != want {
				t.Errorf("GRAFANA_ADMIN_PASSWORD set=%t: secret from env %q, file %q, content %q; want the variable's value %q alone", set, def.Environment, def.File, def.Content, want)
			}
		}
	})
}

// serviceLoaders are the configuration loaders of the services whose
// environment compose and the Helm chart set, but the projector's, which
// each test checks with what it expects of the ops login.
func serviceLoaders() map[string]func(func(string) string) error {
	return map[string]func(func(string) string) error{
		"gateway":  func(g func(string) string) error { _, err := gateway.LoadConfig(g); return err },
		"identity": func(g func(string) string) error { _, err := identity.LoadConfig(g); return err },
		"crm":      func(g func(string) string) error { _, err := crm.LoadConfig(g); return err },
		"support":  func(g func(string) string) error { _, err := support.LoadConfig(g); return err },
		"alerts":   func(g func(string) string) error { _, err := alerts.LoadConfig(g); return err },
	}
}
