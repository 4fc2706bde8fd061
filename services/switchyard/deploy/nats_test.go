package deploy_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

var update = flag.Bool("update", false, "rewrite deploy/nats/ and the Helm chart's files/nats-auth.conf from natsbus.Permissions")

// The NATS server's files, generated from natsbus.Permissions: the server
// configuration with one user per identity, and the script that reads each
// identity's password from its compose secret into the variable the
// configuration names.
const (
	natsConfPath  = "nats/nats.conf"
	natsStartPath = "nats/start.sh"
)

// The nodes of compose.yaml's 3-node cluster (profile cluster) run
// cluster.conf — the same users and permissions, the same JetStream
// settings, plus the cluster — started by start-cluster.sh, which also
// builds the routes with the route password.
const (
	clusterConfPath  = "nats/cluster.conf"
	clusterStartPath = "nats/start-cluster.sh"
	clusterName      = "switchyard"
	routeUser        = "route"
	routeSecret      = "nats_route_password"
	routeVar         = "NATS_ROUTE_PASSWORD"
)

// clusterNodes are the cluster profile's services, which are also the
// nodes' server names and route hosts.
var clusterNodes = []string{"nats-1", "nats-2", "nats-3"}

// passwordVar is the variable nats.conf takes identity's password from.
func passwordVar(identity string) string { return "NATS_PASSWORD_" + strings.ToUpper(identity) }

// passwordSecret is the compose secret holding identity's password.
func passwordSecret(identity string) string { return "nats_password_" + identity }

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// natsConf is the server configuration: the single server's (nats.conf),
// or with cluster a cluster node's (cluster.conf).
func natsConf(perms []natsbus.Permission, cluster bool) string {
	var b strings.Builder
	if cluster {
		b.WriteString(`# A node of compose.yaml's 3-node NATS cluster (profile cluster). GENERATED
# with nats.conf from natsbus.Permissions (platform/natsbus/permissions.go):
# change the catalogue, then run
#   go test ./deploy -run TestNATSConfig -update   (in services/switchyard)
# The users, permissions and JetStream settings are nats.conf's. Each node's
# name is NATS_SERVER_NAME (compose sets it); start-cluster.sh passes the
# routes to the other nodes, with the route password, on the command line.
server_name: $NATS_SERVER_NAME
`)
	} else {
		b.WriteString(`# The NATS server of compose.yaml. GENERATED from natsbus.Permissions
# (platform/natsbus/permissions.go): change the catalogue, then run
#   go test ./deploy -run TestNATSConfig -update   (in services/switchyard)
`)
	}
	b.WriteString(`# Each identity's password is the environment variable named below, which
# the start script reads from the identity's compose secret. There is no
# anonymous user: a client without credentials is refused.
port: 4222
http_port: 8222
# sync_interval: always: a PubAck means the event is on disk (fsync), not
# only in the page cache. The gateway answers Stripe 200 after the PubAck
# and Stripe never resends an event it got a 200 for, so the default (fsync
# every two minutes) could lose acknowledged events in a power failure —
# even on all three nodes at once. What it costs: docs/operations.md, Durability.
jetstream {
  store_dir: "/data"
  sync_interval: always
}
`)
	if cluster {
		fmt.Fprintf(&b, `# Routes only from nodes that know the route password (another client on
# the network cannot join as a node and bypass the permissions below).
cluster {
  name: %q
  port: 6222
  authorization {
    user: %q
    password: $%s
  }
}
`, clusterName, routeUser, routeVar)
	}
	b.WriteString(`authorization {
  users: [
`)
	for _, p := range perms {
		fmt.Fprintf(&b, `    {
      user: %q
      password: $%s
      permissions: {
        publish: { allow: %s }
        subscribe: { allow: %s }
      }
    }
`, p.Identity, passwordVar(p.Identity), quoteList(p.Publish), quoteList(p.Subscribe))
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// helmNATSAuthPath is the Helm chart's copy of the users and permissions:
// the authorization block alone, which the chart's ConfigMap carries and the
// NATS chart's servers include (helm_test.go).
const helmNATSAuthPath = "helm/switchyard/files/nats-auth.conf"

// helmNATSAuth is helm/switchyard/files/nats-auth.conf.
func helmNATSAuth(perms []natsbus.Permission) string {
	conf := natsConf(perms, false)
	i := strings.Index(conf, "authorization {\n")
	return `# The hub's NATS users and permissions for the Helm chart (the NATS chart's
# servers include this file). GENERATED from natsbus.Permissions
# (platform/natsbus/permissions.go) with deploy/nats/nats.conf: change the
# catalogue, then run
#   go test ./deploy -run TestNATSConfig -update   (in services/switchyard)
# Each identity's password is the environment variable named below, which the
# NATS container takes from the chart's Secret. There is no anonymous user.
` + conf[i:]
}

// natsStart is the script starting the single server (start.sh), or with
// cluster a cluster node (start-cluster.sh).
func natsStart(perms []natsbus.Permission, cluster bool) string {
	var ids []string
	for _, p := range perms {
		ids = append(ids, p.Identity)
	}
	head := `#!/bin/sh
# Starts compose.yaml's NATS server. GENERATED with nats.conf (see there).
`
	if cluster {
		head = `#!/bin/sh
# Starts a node of compose.yaml's NATS cluster (profile cluster). GENERATED
# with cluster.conf (see there).
`
	}
	script := head + `# Each identity's password comes from its compose secret
# (/run/secrets/nats_password_<identity>) into the variable the configuration
# names; a missing or empty one stops the server from starting.
set -eu
for id in ` + strings.Join(ids, " ") + `; do
  f="/run/secrets/nats_password_$id"
  if [ ! -s "$f" ]; then
    echo "nats: $f is missing or empty: set NATS_PASSWORD_$(echo "$id" | tr a-z A-Z)" >&2
    exit 1
  fi
  export "NATS_PASSWORD_$(echo "$id" | tr a-z A-Z)=$(cat "$f")"
done
`
	if !cluster {
		return script + "exec nats-server -c /etc/nats/nats.conf \"$@\"\n"
	}
	return script + `# The routes carry the route password (a URL: keep it to letters and digits,
# e.g. openssl rand -hex 24); a node ignores the route to itself.
f="/run/secrets/` + routeSecret + `"
if [ ! -s "$f" ]; then
  echo "nats: $f is missing or empty: set ` + routeVar + `" >&2
  exit 1
fi
export "` + routeVar + `=$(cat "$f")"
routes=""
for node in ` + strings.Join(clusterNodes, " ") + `; do
  routes="$routes${routes:+,}nats-route://` + routeUser + `:$` + routeVar + `@$node:6222"
done
exec nats-server -c /etc/nats/cluster.conf --routes "$routes" "$@"
`
}

// TestNATSConfig holds deploy/nats/ to the permissions catalogue (run
// with -update to regenerate), and loads nats.conf with the server's own
// parser: every identity gets its password from its variable and exactly
// the catalogue's allow lists.
func TestNATSConfig(t *testing.T) {
	perms := natsbus.Permissions(natsbus.Options{})
	files := map[string]string{
		natsConfPath: natsConf(perms, false), natsStartPath: natsStart(perms, false),
		clusterConfPath: natsConf(perms, true), clusterStartPath: natsStart(perms, true),
		helmNATSAuthPath: helmNATSAuth(perms),
	}
	for name, want := range files {
		if *update {
			if err := os.WriteFile(name, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("deploy/%s differs from natsbus.Permissions: run go test ./deploy -run TestNATSConfig -update in services/switchyard", name)
		}
	}

	for _, p := range perms {
		t.Setenv(passwordVar(p.Identity), "pw-"+p.Identity+"-x9")
	}
	t.Setenv("NATS_SERVER_NAME", "nats-2")
	t.Setenv(routeVar, "pw-route-x9")
	for _, path := range []string{natsConfPath, clusterConfPath} {
		t.Run(path, func(t *testing.T) { checkNATSConf(t, path, perms) })
	}
}

// checkNATSConf loads a generated configuration with the server's own
// parser: ports, JetStream on the volume with an fsync before every
// PubAck, the catalogue's users, and for a cluster node its name, cluster
// and route password.
func checkNATSConf(t *testing.T, path string, perms []natsbus.Permission) {
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server cannot load %s: %v", path, err)
	}
	if opts.Port != 4222 || opts.HTTPPort != 8222 || !opts.JetStream || opts.StoreDir != "/data" {
		t.Errorf("port %d, monitoring %d, JetStream %t in %q; want 4222, 8222, on in /data", opts.Port, opts.HTTPPort, opts.JetStream, opts.StoreDir)
	}
	if !opts.SyncAlways {
		t.Errorf("JetStream syncs every %v: want sync_interval: always, so that a PubAck (and the gateway's 200) means the event is on disk", opts.SyncInterval)
	}
	if path == clusterConfPath {
		c := opts.Cluster
		if opts.ServerName != "nats-2" || c.Name != clusterName || c.Port != 6222 || c.Username != routeUser || c.Password != "pw-route-x9" {
			t.Errorf("server %q in cluster %q on port %d, route user %q password %q; want NATS_SERVER_NAME's, %s, 6222, %s with %s's",
				opts.ServerName, c.Name, c.Port, c.Username, c.Password, clusterName, routeUser, routeVar)
		}
	} else if opts.Cluster.Port != 0 || opts.ServerName != "" {
		t.Errorf("the single server has a cluster port %d or a name %q", opts.Cluster.Port, opts.ServerName)
	}
	if opts.NoAuthUser != "" || len(opts.Users) != len(perms) {
		t.Fatalf("%d users (no-auth user %q), want the catalogue's %d and no anonymous access", len(opts.Users), opts.NoAuthUser, len(perms))
	}
	for i, p := range perms {
		u := opts.Users[i]
		if u.Username != p.Identity || u.Password != "pw-"+p.Identity+"-x9" {
			t.Errorf("user %d: %s with password %q, want %s with its variable's", i, u.Username, u.Password, p.Identity)
		}
		if u.Permissions == nil || !slices.Equal(u.Permissions.Publish.Allow, p.Publish) || !slices.Equal(u.Permissions.Subscribe.Allow, p.Subscribe) {
			t.Errorf("%s: permissions differ from the catalogue", p.Identity)
		}
	}
}

// TestComposeNATSIdentities: the NATS server runs deploy/nats/ with every
// identity's password secret, and each service (and migrate) logs in as
// its own identity with its password from a secret, never inline.
func TestComposeNATSIdentities(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())
	nats := mustService(t, project, "nats")
	if len(nats.Entrypoint) != 2 || nats.Entrypoint[0] != "/bin/sh" || nats.Entrypoint[1] != "/etc/nats/start.sh" {
		t.Errorf("nats entrypoint = %q, want /bin/sh /etc/nats/start.sh", nats.Entrypoint)
	}
	for _, f := range []string{natsConfPath, natsStartPath} {
		src, _ := filepath.Abs(f)
		if !slices.ContainsFunc(nats.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Source == src && v.Target == "/etc/nats/"+filepath.Base(f) && v.ReadOnly
		}) {
			t.Errorf("nats does not mount deploy/%s read-only at /etc/nats/%s", f, filepath.Base(f))
		}
	}
	for _, p := range natsbus.Permissions(natsbus.Options{}) {
		if !slices.ContainsFunc(nats.Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == passwordSecret(p.Identity) }) {
			t.Errorf("nats lacks the secret %s", passwordSecret(p.Identity))
		}
		if _, ok := project.Secrets[passwordSecret(p.Identity)]; !ok {
			t.Errorf("secret %s is not defined", passwordSecret(p.Identity))
		}
	}
	for svc, identity := range map[string]string{
		"migrate": natsbus.IdentityMigrate, "gateway": natsbus.IdentityGateway, "identity": natsbus.IdentityIdentity,
		"crm": natsbus.IdentityCRM, "support": natsbus.IdentitySupport, "alerts": natsbus.IdentityAlerts, "projector": natsbus.IdentityProjector,
	} {
		s := mustService(t, project, svc)
		if v := s.Environment["NATS_USER"]; v == nil || *v != identity {
			t.Errorf("%s: NATS_USER = %v, want %s", svc, v, identity)
		}
		if v := s.Environment["NATS_PASSWORD_FILE"]; v == nil || *v != "/run/secrets/"+passwordSecret(identity) {
			t.Errorf("%s: NATS_PASSWORD_FILE = %v, want /run/secrets/%s", svc, v, passwordSecret(identity))
		}
		if _, inline := s.Environment["NATS_PASSWORD"]; inline {
			t.Errorf("%s: NATS_PASSWORD inline; use the secret", svc)
		}
		if !slices.ContainsFunc(s.Secrets, func(sc types.ServiceSecretConfig) bool { return sc.Source == passwordSecret(identity) }) {
			t.Errorf("%s lacks the secret %s", svc, passwordSecret(identity))
		}
	}
	// The projector's dead-letter actions log in as the operator, with the
	// operator's password from its secret: its own identity cannot replay.
	projector := mustService(t, project, "projector")
	if v := projector.Environment["OPS_NATS_USER"]; v == nil || *v != natsbus.IdentityOperator {
		t.Errorf("projector: OPS_NATS_USER = %v, want %s", v, natsbus.IdentityOperator)
	}
	if v := projector.Environment["OPS_NATS_PASSWORD_FILE"]; v == nil || *v != "/run/secrets/"+passwordSecret(natsbus.IdentityOperator) {
		t.Errorf("projector: OPS_NATS_PASSWORD_FILE = %v, want /run/secrets/%s", v, passwordSecret(natsbus.IdentityOperator))
	}
	if !slices.ContainsFunc(projector.Secrets, func(sc types.ServiceSecretConfig) bool { return sc.Source == passwordSecret(natsbus.IdentityOperator) }) {
		t.Errorf("projector lacks the secret %s", passwordSecret(natsbus.IdentityOperator))
	}
}

// TestComposeReplayKeys: every consuming service checks replays against
// the operator's public key, and only the projector (whose status API and
// console replay dead letters) holds the signing key, from a secret.
func TestComposeReplayKeys(t *testing.T) {
	t.Parallel()
	project := loadCompose(t, defaultEnv())
	for _, svc := range []string{"identity", "crm", "support", "alerts", "projector"} {
		s := mustService(t, project, svc)
		if v := s.Environment["SWITCHYARD_REPLAY_KEYS"]; v == nil || *v != defaultEnv()["SWITCHYARD_REPLAY_KEYS"] {
			t.Errorf("%s: SWITCHYARD_REPLAY_KEYS = %v, want the operator's public key", svc, v)
		}
	}
	for _, s := range project.Services {
		_, inline := s.Environment["SWITCHYARD_REPLAY_SIGNING_KEY"]
		_, file := s.Environment["SWITCHYARD_REPLAY_SIGNING_KEY_FILE"]
		if inline || (file != (s.Name == "projector")) {
			t.Errorf("%s: replay signing key inline %t, from a file %t; want only the projector's, from its secret", s.Name, inline, file)
		}
	}
	env := defaultEnv()
	delete(env, "SWITCHYARD_REPLAY_KEYS")
	root, _ := filepath.Abs(repoRoot)
	if _, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{WorkingDir: root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "compose.yaml")}}, Environment: types.Mapping(env)},
		func(o *loader.Options) { o.SetProjectName("switchyard", true) }); err == nil || !strings.Contains(err.Error(), "switchyard replay-key") {
		t.Errorf("compose without SWITCHYARD_REPLAY_KEYS: %v, want a refusal naming switchyard replay-key", err)
	}
}

// TestComposeClusterProfile: `docker compose --profile cluster up` adds
// three NATS nodes running the generated cluster.conf, each with its own
// volume, name and every identity's password plus the route password; with
// NATS_URL and NATS_STREAM_REPLICAS exported, migrate makes three replicas
// once all three are healthy and every service is given all three URLs.
// Without the profile there are no nodes.
func TestComposeClusterProfile(t *testing.T) {
	t.Parallel()
	if off := loadCompose(t, defaultEnv()); slices.ContainsFunc(clusterNodes, func(n string) bool { _, on := off.Services[n]; return on }) {
		t.Errorf("without the cluster profile, services are %v: want no cluster node", off.ServiceNames())
	}
	const clusterURL = "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"
	env := defaultEnv()
	env["NATS_URL"], env["NATS_STREAM_REPLICAS"], env[routeVar] = clusterURL, "3", "compose-test-route-pw"
	project := loadComposeProfiles(t, env, "cluster")

	var nodes []string
	for _, name := range project.ServiceNames() {
		if slices.Contains(mustService(t, project, name).Profiles, "cluster") {
			nodes = append(nodes, name)
		}
	}
	if !slices.Equal(nodes, clusterNodes) {
		t.Fatalf("the cluster profile's services are %v, want %v (start-cluster.sh routes to those)", nodes, clusterNodes)
	}
	volumes := map[string]string{}
	for _, name := range clusterNodes {
		n := mustService(t, project, name)
		if len(n.Entrypoint) != 2 || n.Entrypoint[0] != "/bin/sh" || n.Entrypoint[1] != "/etc/nats/start-cluster.sh" {
			t.Errorf("%s entrypoint = %q, want /bin/sh /etc/nats/start-cluster.sh", name, n.Entrypoint)
		}
		if n.Image != mustService(t, project, "nats").Image {
			t.Errorf("%s runs %s, the single server %s: want the same", name, n.Image, mustService(t, project, "nats").Image)
		}
		for _, f := range []string{clusterConfPath, clusterStartPath} {
			src, _ := filepath.Abs(f)
			if !slices.ContainsFunc(n.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Source == src && v.Target == "/etc/nats/"+filepath.Base(f) && v.ReadOnly
			}) {
				t.Errorf("%s does not mount deploy/%s read-only at /etc/nats/%s", name, f, filepath.Base(f))
			}
		}
		for _, v := range n.Volumes {
			if v.Target == "/data" && v.Type == types.VolumeTypeVolume {
				if other, ok := volumes[v.Source]; ok {
					t.Errorf("%s and %s share the volume %s", name, other, v.Source)
				}
				volumes[v.Source] = name
			}
		}
		if v := n.Environment["NATS_SERVER_NAME"]; v == nil || *v != name {
			t.Errorf("%s: NATS_SERVER_NAME = %s, want %s (cluster.conf's server_name)", name, deref(v), name)
		}
		for _, secret := range append(passwordSecrets(), routeSecret) {
			if !slices.ContainsFunc(n.Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == secret }) {
				t.Errorf("%s lacks the secret %s", name, secret)
			}
		}
		if n.HealthCheck == nil || len(n.HealthCheck.Test) == 0 {
			t.Errorf("%s has no healthcheck; migrate waits for it", name)
		}
		for _, p := range n.Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s on %q, want 127.0.0.1", name, p.Published, p.HostIP)
			}
		}
		if d, ok := mustService(t, project, "migrate").DependsOn[name]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("migrate depends_on %s = %+v, want condition %s: three replicas need three nodes", name, d, types.ServiceConditionHealthy)
		}
	}
	if len(volumes) != len(clusterNodes) {
		t.Errorf("cluster nodes' volumes at /data: %v, want one each", volumes)
	}
	if _, ok := project.Secrets[routeSecret]; !ok {
		t.Errorf("secret %s is not defined", routeSecret)
	}
	if v := mustService(t, project, "migrate").Environment["NATS_STREAM_REPLICAS"]; v == nil || *v != "3" {
		t.Errorf("migrate NATS_STREAM_REPLICAS = %s with NATS_STREAM_REPLICAS=3 exported, want 3", deref(v))
	}
	for _, name := range project.ServiceNames() {
		s := mustService(t, project, name)
		if v, ok := s.Environment["NATS_URL"]; ok && (v == nil || *v != clusterURL) {
			t.Errorf("%s: NATS_URL = %s with the cluster's exported, want %s", name, deref(v), clusterURL)
		}
	}
}

// passwordSecrets are every identity's password secret.
func passwordSecrets() []string {
	var out []string
	for _, p := range natsbus.Permissions(natsbus.Options{}) {
		out = append(out, passwordSecret(p.Identity))
	}
	return out
}

// TestNATSClusterConfigFormsACluster starts three servers from the
// generated cluster.conf (on this machine's free ports and temporary
// stores instead of the containers' 4222, 6222 and /data; the routes as
// start-cluster.sh builds them): they elect a JetStream leader, migrate
// (as the migrate identity) makes the catalogue's streams with three
// replicas, and the gateway's identity stores an event on them. A node
// given the wrong route password is not let in.
func TestNATSClusterConfigFormsACluster(t *testing.T) {
	perms := natsbus.Permissions(natsbus.Options{})
	for _, p := range perms {
		t.Setenv(passwordVar(p.Identity), "pw-"+p.Identity+"-x9")
	}
	ports := testkit.FreePorts(t, 2*len(clusterNodes)+2)
	routes := func(pw string) []string {
		var out []string
		for i := range clusterNodes {
			out = append(out, fmt.Sprintf("nats-route://%s:%s@127.0.0.1:%d", routeUser, pw, ports[len(clusterNodes)+i]))
		}
		return out
	}
	start := func(name string, client, cluster int, routePW string) *server.Server {
		t.Helper()
		t.Setenv("NATS_SERVER_NAME", name)
		t.Setenv(routeVar, routePW)
		opts, err := server.ProcessConfigFile(clusterConfPath)
		if err != nil {
			t.Fatal(err)
		}
		opts.Host, opts.Port, opts.HTTPPort, opts.StoreDir = "127.0.0.1", client, 0, t.TempDir()
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", cluster
		opts.Routes = server.RoutesFromStr(strings.Join(routes(routePW), ","))
		opts.NoLog, opts.NoSigs = true, true
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		return s
	}
	var servers []*server.Server
	var urls []string
	for i, name := range clusterNodes {
		servers = append(servers, start(name, ports[i], ports[len(clusterNodes)+i], "route-pw-x9"))
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	testkit.WaitFor(t, 30*time.Second, "a JetStream meta leader", func() bool {
		return slices.ContainsFunc(servers, (*server.Server).JetStreamIsLeader)
	})

	connect := func(identity string) jetstream.JetStream {
		t.Helper()
		nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo(identity, "pw-"+identity+"-x9"),
			nats.CustomInboxPrefix(natsbus.InboxPrefix(identity)), nats.MaxReconnects(-1))
		if err != nil {
			t.Fatalf("connect as %s: %v", identity, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js := connect(natsbus.IdentityMigrate)
	testkit.WaitFor(t, 30*time.Second, "switchyard migrate with NATS_STREAM_REPLICAS=3", func() bool {
		_, err := natsbus.Migrate(ctx, js, natsbus.Options{Replicas: 3})
		return err == nil
	})
	info, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.CachedInfo(); c.Config.Replicas != 3 || c.Cluster == nil || c.Cluster.Name != clusterName {
		t.Errorf("STRIPE: %d replicas in cluster %+v, want 3 in %s", c.Config.Replicas, c.Cluster, clusterName)
	}
	gw := connect(natsbus.IdentityGateway)
	testkit.WaitFor(t, 30*time.Second, "the gateway's publish to be stored", func() bool {
		_, err := gw.Publish(ctx, "stripe.events.customer.created", []byte(`{}`), jetstream.WithMsgID("evt_clusterconf"))
		return err == nil
	})

	// A fourth node with the wrong route password never joins.
	intruder := start("intruder", ports[2*len(clusterNodes)], ports[2*len(clusterNodes)+1], "wrong-pw")
	testkit.Never(t, 2*time.Second, "a node with the wrong route password joining", func() bool {
		return slices.Contains(servers[0].JetStreamClusterPeers(), "intruder")
	})
	if n := intruder.NumRoutes(); n != 0 {
		t.Errorf("the node with the wrong route password holds %d routes, want none", n)
	}
}
