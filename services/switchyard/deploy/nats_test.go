package deploy_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchyard/switchyard/platform/natsbus"
)

var update = flag.Bool("update", false, "rewrite deploy/nats/ from natsbus.Permissions")

// The NATS server's files, generated from natsbus.Permissions: the server
// configuration with one user per identity, and the script that reads each
// identity's password from its compose secret into the variable the
// configuration names.
const (
	natsConfPath  = "nats/nats.conf"
	natsStartPath = "nats/start.sh"
)

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

func natsConf(perms []natsbus.Permission) string {
	var b strings.Builder
	b.WriteString(`# The NATS server of compose.yaml. GENERATED from natsbus.Permissions
# (platform/natsbus/permissions.go): change the catalogue, then run
#   go test ./deploy -run TestNATSConfig -update   (in services/switchyard)
# Each identity's password is the environment variable named below, which
# start.sh reads from the identity's compose secret. There is no anonymous
# user: a client without credentials is refused.
port: 4222
http_port: 8222
jetstream {
  store_dir: "/data"
}
authorization {
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

func natsStart(perms []natsbus.Permission) string {
	var ids []string
	for _, p := range perms {
		ids = append(ids, p.Identity)
	}
	return `#!/bin/sh
# Starts compose.yaml's NATS server. GENERATED with nats.conf (see there).
# Each identity's password comes from its compose secret
# (/run/secrets/nats_password_<identity>) into the variable nats.conf names;
# a missing or empty one stops the server from starting.
set -eu
for id in ` + strings.Join(ids, " ") + `; do
  f="/run/secrets/nats_password_$id"
  if [ ! -s "$f" ]; then
    echo "nats: $f is missing or empty: set NATS_PASSWORD_$(echo "$id" | tr a-z A-Z)" >&2
    exit 1
  fi
  export "NATS_PASSWORD_$(echo "$id" | tr a-z A-Z)=$(cat "$f")"
done
exec nats-server -c /etc/nats/nats.conf "$@"
`
}

// TestNATSConfig holds deploy/nats/ to the permissions catalogue (run
// with -update to regenerate), and loads nats.conf with the server's own
// parser: every identity gets its password from its variable and exactly
// the catalogue's allow lists.
func TestNATSConfig(t *testing.T) {
	perms := natsbus.Permissions(natsbus.Options{})
	files := map[string]string{natsConfPath: natsConf(perms), natsStartPath: natsStart(perms)}
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
	opts, err := server.ProcessConfigFile(natsConfPath)
	if err != nil {
		t.Fatalf("nats-server cannot load %s: %v", natsConfPath, err)
	}
	if opts.Port != 4222 || opts.HTTPPort != 8222 || !opts.JetStream || opts.StoreDir != "/data" {
		t.Errorf("port %d, monitoring %d, JetStream %t in %q; want 4222, 8222, on in /data", opts.Port, opts.HTTPPort, opts.JetStream, opts.StoreDir)
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
