package deploy_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/switchyard/migration"
)

// The Helm chart (helm/switchyard). scripts/helm renders and lints it with
// Helm's own code, in a module of its own; this file checks, with the
// nats-server's parser, the glue between the chart and the official NATS
// chart, which CI cannot render (it is fetched by `helm dependency build`).
const (
	helmValuesPath   = "helm/switchyard/values.yaml"
	helmNATSAuthTmpl = "helm/switchyard/templates/nats-auth.yaml"
	// natsChartConfigDir is where the NATS chart (1.x) mounts nats.conf.
	natsChartConfigDir = "/etc/nats-config"
)

// helmNATSValues is the part of values.yaml's nats section this test reads.
type helmNATSValues struct {
	Secret struct {
		Name string `yaml:"name"`
	} `yaml:"secret"`
	NATS struct {
		Enabled          bool   `yaml:"enabled"`
		FullnameOverride string `yaml:"fullnameOverride"`
		Config           struct {
			Cluster struct {
				Enabled  bool `yaml:"enabled"`
				Replicas int  `yaml:"replicas"`
				Merge    struct {
					Authorization struct {
						User     string `yaml:"user"`
						Password string `yaml:"password"`
					} `yaml:"authorization"`
				} `yaml:"merge"`
				Patch []struct {
					Op    string   `yaml:"op"`
					Path  string   `yaml:"path"`
					Value []string `yaml:"value"`
				} `yaml:"patch"`
			} `yaml:"cluster"`
			JetStream struct {
				Enabled   bool `yaml:"enabled"`
				FileStore struct {
					Enabled bool   `yaml:"enabled"`
					Dir     string `yaml:"dir"`
					PVC     struct {
						Enabled bool   `yaml:"enabled"`
						Size    string `yaml:"size"`
					} `yaml:"pvc"`
				} `yaml:"fileStore"`
				Merge map[string]any `yaml:"merge"`
			} `yaml:"jetstream"`
			Merge map[string]string `yaml:"merge"`
		} `yaml:"config"`
		Container struct {
			Image struct {
				Repository string `yaml:"repository"`
				Tag        string `yaml:"tag"`
			} `yaml:"image"`
			Env   map[string]yaml.Node `yaml:"env"`
			Patch []struct {
				Op    string `yaml:"op"`
				Path  string `yaml:"path"`
				Value struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"value"`
			} `yaml:"patch"`
		} `yaml:"container"`
		PodTemplate struct {
			Patch []struct {
				Op    string `yaml:"op"`
				Path  string `yaml:"path"`
				Value struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"value"`
			} `yaml:"patch"`
		} `yaml:"podTemplate"`
	} `yaml:"nats"`
}

// natsVar is the NATS chart's "<< $VAR >>": written into nats.conf unquoted,
// a reference to the variable.
var natsVar = regexp.MustCompile(`^<< \$([A-Z0-9_]+) >>$`)

// k8sVarRef is Kubernetes's $(VAR) in an env value.
var k8sVarRef = regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`)

// TestHelmNATSValues: the values the chart hands the official NATS chart
// make a 3-node JetStream cluster on file storage, of the nats-server the
// tests embed, with the hub's users (files/nats-auth.conf, mounted from the
// chart's ConfigMap and included) and every password from the Secret. The
// server configuration they produce is modelled on the NATS chart's 1.x
// output and loaded with the server's own parser, with the environment
// Kubernetes would give the container.
func TestHelmNATSValues(t *testing.T) {
	var v helmNATSValues
	b, err := os.ReadFile(helmValuesPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", helmValuesPath, err)
	}
	n := v.NATS
	c := n.Config
	if !n.Enabled || !c.Cluster.Enabled || c.Cluster.Replicas != 3 {
		t.Errorf("nats enabled %t, cluster %t with %d replicas; want the bundled 3-node cluster", n.Enabled, c.Cluster.Enabled, c.Cluster.Replicas)
	}
	js := c.JetStream
	if !js.Enabled || !js.FileStore.Enabled || !js.FileStore.PVC.Enabled || js.FileStore.PVC.Size == "" {
		t.Errorf("jetstream %+v: want JetStream on file storage with a PVC per node", js)
	}
	if js.Merge["sync_interval"] != "always" {
		t.Errorf("jetstream merge %v: want sync_interval: always (a PubAck means on disk, as deploy/nats/nats.conf)", js.Merge)
	}

	// The image: the server the tests embed, as compose's.
	major, minor, patch := embeddedNATSVersion(t)
	if want := fmt.Sprintf("%d.%d.%d-alpine", major, minor, patch); n.Container.Image.Repository != "nats" || n.Container.Image.Tag != want {
		t.Errorf("nats image %s:%s, want nats:%s (the embedded nats-server)", n.Container.Image.Repository, n.Container.Image.Tag, want)
	}

	// The Secret's keys reach the container as variables, never as values.
	perms := natsbus.Permissions(natsbus.Options{})
	env := map[string]string{} // what Kubernetes gives the container
	secretVars := map[string]string{}
	for _, p := range perms {
		secretVars[passwordVar(p.Identity)] = "nats-password-" + p.Identity
	}
	secretVars[routeVar] = "nats-route-password"
	for name, key := range secretVars {
		node, ok := n.Container.Env[name]
		if !ok {
			t.Errorf("nats.container.env has no %s", name)
			continue
		}
		var ref struct {
			ValueFrom struct {
				SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		}
		if node.Kind != yaml.MappingNode || node.Decode(&ref) != nil || ref.ValueFrom.SecretKeyRef.Name != v.Secret.Name || ref.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("nats.container.env.%s: want valueFrom.secretKeyRef {name: %s, key: %s} (secret.name's), not a value", name, v.Secret.Name, key)
		}
		env[name] = "pw-" + strings.ToLower(name) + "-x9"
	}
	// Plain variables may refer to earlier ones as $(VAR); the NATS chart
	// lists container.env in name order.
	names := make([]string, 0, len(n.Container.Env))
	for name := range n.Container.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		node := n.Container.Env[name]
		if node.Kind != yaml.ScalarNode {
			continue
		}
		value := node.Value
		for _, m := range k8sVarRef.FindAllStringSubmatch(value, -1) {
			if !slices.Contains(names[:i], m[1]) {
				t.Errorf("nats.container.env.%s refers to $(%s), which is not listed before it: Kubernetes would not expand it", name, m[1])
			}
		}
		env[name] = k8sVarRef.ReplaceAllStringFunc(value, func(ref string) string { return env[k8sVarRef.FindStringSubmatch(ref)[1]] })
	}

	// The routes: one per node, each with the route password.
	var routes []string
	for _, p := range c.Cluster.Patch {
		if p.Op == "replace" && p.Path == "/routes" {
			routes = p.Value
		}
	}
	if len(routes) != c.Cluster.Replicas {
		t.Fatalf("cluster patch sets routes %q, want one per node (%d)", routes, c.Cluster.Replicas)
	}
	var routeRefs []string
	for i, r := range routes {
		m := natsVar.FindStringSubmatch(r)
		if m == nil {
			t.Fatalf("route %q: want << $VAR >>, a variable holding the URL with the password", r)
		}
		routeRefs = append(routeRefs, "$"+m[1])
		want := fmt.Sprintf("nats://%s:%s@%s-%d.%[3]s-headless:6222", routeUser, env[routeVar], n.FullnameOverride, i)
		if env[m[1]] != want {
			t.Errorf("route %d: $%s is %q in the container, want %q (the node's pod through the headless service, with the route password)", i, m[1], env[m[1]], want)
		}
	}
	auth := c.Cluster.Merge.Authorization
	pw := natsVar.FindStringSubmatch(auth.Password)
	if auth.User != routeUser || pw == nil || pw[1] != routeVar {
		t.Errorf("cluster authorization %+v: want user %s, password << $%s >>", auth, routeUser, routeVar)
	}

	// The users: the ConfigMap's file, mounted into the NATS container and
	// included from the chart's nats.conf by a path relative to it.
	include := c.Merge["$include"]
	if include == "" {
		t.Fatal("nats.config.merge has no $include of the users")
	}
	included := path.Join(natsChartConfigDir, include)
	var mountPath, volume string
	for _, p := range n.Container.Patch {
		if p.Op == "add" && p.Path == "/volumeMounts/-" && path.Dir(included) == path.Clean(p.Value.MountPath) {
			mountPath, volume = p.Value.MountPath, p.Value.Name
		}
	}
	if mountPath == "" {
		t.Fatalf("no volume is mounted at %s, where the $include %q points", path.Dir(included), include)
	}
	// The NATS chart's config reloader watches every include too, and mounts
	// the NATS container's volumes under reloader.natsVolumeMountPrefixes
	// (default /etc/): elsewhere it would not find the file.
	if !strings.HasPrefix(mountPath, "/etc/") {
		t.Errorf("the users are mounted at %s: mount them under /etc/ so the config reloader sees them too", mountPath)
	}
	var configMap string
	for _, p := range n.PodTemplate.Patch {
		if p.Op == "add" && p.Path == "/spec/volumes/-" && p.Value.Name == volume {
			configMap = p.Value.ConfigMap.Name
		}
	}
	tmpl, err := os.ReadFile(helmNATSAuthTmpl)
	if err != nil {
		t.Fatal(err)
	}
	if configMap == "" || !strings.Contains(string(tmpl), "\n  name: "+configMap+"\n") {
		t.Errorf("volume %s is ConfigMap %q, which %s does not create", volume, configMap, helmNATSAuthTmpl)
	}
	key := path.Base(included)
	if !strings.Contains(string(tmpl), "\n  "+key+": |\n") || !strings.Contains(string(tmpl), `.Files.Get "files/`+key+`"`) {
		t.Errorf("%s carries no key %s from files/%[2]s", helmNATSAuthTmpl, key)
	}

	// The server's configuration as the NATS chart (1.x) writes it: its own
	// settings, then the values' merges and patches, as JSON with "<< X >>"
	// unquoted to X and "$include": "f" turned into include f; (its
	// nats.formatConfig), loaded with env.
	dir := t.TempDir()
	confDir := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(natsChartConfigDir, "/")))
	authDir := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(path.Dir(included), "/")))
	for _, d := range []string{confDir, authDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	authConf, err := os.ReadFile(helmNATSAuthPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(authDir, key), authConf, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`server_name: %s-0
port: 4222
http_port: 8222
cluster {
  name: %q
  port: 6222
  no_advertise: true
  routes: [%s]
  authorization { user: %q, password: $%s }
}
jetstream {
  store_dir: %q
  max_file_store: 10737418240
  sync_interval: %q
}
include %s;
`, n.FullnameOverride, n.FullnameOverride, strings.Join(routeRefs, ", "), auth.User, pw[1], js.FileStore.Dir, js.Merge["sync_interval"], include)
	confFile := filepath.Join(confDir, "nats.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, value := range env {
		t.Setenv(name, value)
	}
	opts, err := server.ProcessConfigFile(confFile)
	if err != nil {
		t.Fatalf("nats-server cannot load the modelled configuration: %v\n%s", err, conf)
	}
	if opts.Cluster.Username != routeUser || opts.Cluster.Password != env[routeVar] || len(opts.Routes) != 3 {
		t.Errorf("cluster: route user %q password %q, %d routes; want %s, the Secret's password, 3", opts.Cluster.Username, opts.Cluster.Password, len(opts.Routes), routeUser)
	}
	for _, r := range opts.Routes {
		if p, _ := r.User.Password(); r.User.Username() != routeUser || p != env[routeVar] {
			t.Errorf("route %s carries no route credentials", r.Redacted())
		}
	}
	if !opts.SyncAlways || !opts.JetStream || opts.StoreDir != js.FileStore.Dir {
		t.Errorf("JetStream %t in %q, sync always %t", opts.JetStream, opts.StoreDir, opts.SyncAlways)
	}
	if opts.NoAuthUser != "" || len(opts.Users) != len(perms) {
		t.Fatalf("%d users (no-auth user %q), want the catalogue's %d and no anonymous access", len(opts.Users), opts.NoAuthUser, len(perms))
	}
	for i, p := range perms {
		u := opts.Users[i]
		if u.Username != p.Identity || u.Password != env[passwordVar(p.Identity)] {
			t.Errorf("user %d: %s with password %q, want %s with its Secret key's", i, u.Username, u.Password, p.Identity)
		}
		if u.Permissions == nil || !slices.Equal(u.Permissions.Publish.Allow, p.Publish) || !slices.Equal(u.Permissions.Subscribe.Allow, p.Subscribe) {
			t.Errorf("%s: permissions differ from the catalogue", p.Identity)
		}
	}
}

// helmRenderedEnvPath is every component's environment as the chart renders
// it (scripts/helm's TestChartRenderedEnv writes it and fails when it is
// stale).
const helmRenderedEnvPath = "helm/rendered-env.json"

// helmSecretDir is where the chart mounts the Secret's keys.
const helmSecretDir = "/run/secrets/switchyard/"

// helmSecrets stand in for the keys of the Secret an operator creates
// (docs/operations.md, Deploy).
func helmSecrets() map[string]string {
	s := map[string]string{
		"database-url":          "postgres://switchyard:helm-test-pw@db:5432/switchyard?sslmode=require",
		"stripe-webhook-secret": testWebhookSecret,
		"hubspot-token":         "pat-helm-test",
		"zendesk-api-token":     "zd-helm-test",
		"slack-webhook-url":     "https://hooks.slack.example/services/T/B/X",
		"ops-tokens":            "founder:read+operate:0123456789abcdef0123456789abcdef,alerts:read:fedcba9876543210fedcba9876543210",
		"alerts-ops-token":      "fedcba9876543210fedcba9876543210",
		"replay-signing-key":    hex.EncodeToString(testReplayKey.Seed()),
		"nats-route-password":   "helm-route-pw",
	}
	for _, p := range natsbus.Permissions(natsbus.Options{}) {
		s["nats-password-"+p.Identity] = "helm-" + p.Identity + "-pw"
	}
	return s
}

// TestHelmEnvConfigContracts starts each component's configuration loader
// on the environment the Helm chart gives it, with the Secret's keys as
// files: the chart's settings must be accepted as they are (the chart runs
// SWITCHYARD_ENV=production by default), and the chart must set nothing the
// loader does not read.
func TestHelmEnvConfigContracts(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(helmRenderedEnvPath)
	if err != nil {
		t.Fatal(err)
	}
	var rendered map[string]map[string]string
	if err := json.Unmarshal(b, &rendered); err != nil {
		t.Fatalf("%s: %v", helmRenderedEnvPath, err)
	}
	loaders := serviceLoaders()
	loaders["projector"] = func(g func(string) string) error {
		c, err := projector.LoadConfig(g)
		if err == nil && (c.Tokens.Len() != 2 || !c.HasOpsNATS || c.OpsNATS.User != "operator" || c.OpsNATS.Password.Reveal() != "helm-operator-pw") {
			err = fmt.Errorf("ops tokens %d, ops NATS login %t %q: want 2 and operator with its Secret key", c.Tokens.Len(), c.HasOpsNATS, c.OpsNATS.User)
		}
		return err
	}
	loaders["migrate"] = func(g func(string) string) error {
		c, err := migration.LoadConfig(g, false)
		if err == nil && c.NATS.Replicas != 3 {
			err = fmt.Errorf("stream replicas %d, want 3", c.NATS.Replicas)
		}
		return err
	}
	if got := slices.Sorted(maps.Keys(rendered)); !slices.Equal(got, slices.Sorted(maps.Keys(loaders))) {
		t.Fatalf("%s has %v, want the six components and migrate", helmRenderedEnvPath, got)
	}
	secrets := helmSecrets()
	for name, load := range loaders {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := map[string]string{}
			for k, v := range rendered[name] {
				if key, ok := strings.CutPrefix(v, helmSecretDir); ok && strings.HasSuffix(k, "_FILE") {
					content, known := secrets[key]
					if !known {
						t.Fatalf("%s=%s: the Secret has no key %s (docs/operations.md lists its keys)", k, v, key)
					}
					f := filepath.Join(dir, key)
					if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
					v = f
				}
				env[k] = v
			}
			rec := config.NewRecorder(config.MapEnv(env))
			if err := load(rec.Getenv); err != nil {
				t.Fatalf("%s config on the chart's environment: %v", name, err)
			}
			for _, v := range slices.Sorted(maps.Keys(env)) {
				if !strings.HasPrefix(v, "OTEL_") && !slices.Contains(rec.Names(), v) {
					t.Errorf("the chart sets %s for %s, which its config never reads", v, name)
				}
			}
		})
	}
}
