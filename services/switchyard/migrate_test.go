package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/switchyard/migration"
)

// migrateCLI runs `switchyard migrate args...` with only env set.
func migrateCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = run(ctx, append([]string{"migrate"}, args...), func(k string) string { return env[k] }, nil, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestMigrateIsIdempotentAndSaysWhatItChanged: on an empty server and
// database, migrate creates the whole catalogue and every service's
// tables; run again, it changes nothing and says so; with a new retention
// it updates exactly the streams it applies to (never the DLQ).
func TestMigrateIsIdempotentAndSaysWhatItChanged(t *testing.T) {
	b := testkit.EmptyNATS(t)
	env := map[string]string{"NATS_URL": b.URL, "DATABASE_URL": testkit.Postgres(t)}
	migrateJSON := func() migration.Report {
		t.Helper()
		out, errOut, code := migrateCLI(t, env, "--json")
		if code != 0 {
			t.Fatalf("migrate --json: exit %d\n%s%s", code, out, errOut)
		}
		var m migration.Report
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("migrate --json output: %v\n%s", err, out)
		}
		return m
	}
	wantNATS := len(natsbus.StreamNames()) + len(natsbus.Durables(natsbus.Options{}))
	wantSQL := []string{"ledger", "identity", "projector", "alerts", "projection"}

	first := migrateJSON()
	if len(first.NATS) != wantNATS || len(first.Postgres) != len(wantSQL) {
		t.Fatalf("first migrate: %d NATS changes, %d PostgreSQL; want %d and %d", len(first.NATS), len(first.Postgres), wantNATS, len(wantSQL))
	}
	for _, c := range first.NATS {
		if c.Action != natsbus.Created {
			t.Errorf("first migrate: %s, want created", c)
		}
	}
	for i, c := range first.Postgres {
		if c.Name != wantSQL[i] || c.Action != natsbus.Created || (c.Name != "projection" && c.Applied == 0) {
			t.Errorf("first migrate: postgres %+v, want %s created", c, wantSQL[i])
		}
	}

	second := migrateJSON()
	if c, u, n := second.Counts(); c != 0 || u != 0 || n != wantNATS+len(wantSQL) {
		t.Errorf("second migrate: %d created, %d updated, %d unchanged; want everything unchanged: %+v", c, u, n, second)
	}

	env["NATS_STREAM_MAX_AGE"] = "720h"
	out, errOut, code := migrateCLI(t, env)
	if code != 0 {
		t.Fatalf("migrate with NATS_STREAM_MAX_AGE=720h: exit %d\n%s%s", code, out, errOut)
	}
	for _, name := range []string{natsbus.StreamStripe, natsbus.StreamBilling, natsbus.StreamCRM, natsbus.StreamSupport} {
		if want := "nats      stream " + name + ": updated (max_age 0s → 720h0m0s)"; !strings.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"nats      stream DLQ: unchanged", "postgres  identity: unchanged", "migrated: 0 created, 4 updated, "} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, out)
		}
	}
	_, js := b.Connect(t)
	s, err := js.Stream(context.Background(), natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	if age := s.CachedInfo().Config.MaxAge; age != 720*time.Hour {
		t.Errorf("STRIPE max age after migrate = %v, want 720h", age)
	}
}

// TestMigrateNamesIdentitysConsumers: IDENTITY_CONSUMER renames identity's
// two durables for migrate as for identity.
func TestMigrateNamesIdentitysConsumers(t *testing.T) {
	b := testkit.EmptyNATS(t)
	env := map[string]string{"NATS_URL": b.URL, "DATABASE_URL": testkit.Postgres(t), "IDENTITY_CONSUMER": "identity_eu"}
	out, errOut, code := migrateCLI(t, env)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"consumer identity_eu on STRIPE: created", "consumer identity_eu_crm_links on CRM: created"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, out)
		}
	}
}

func TestMigrateFailures(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		want     string // in stdout or stderr
	}{
		{name: "help exits 0 without connecting", args: []string{"-h"}, env: map[string]string{"NATS_URL": "nats://127.0.0.1:1"},
			wantCode: 0, want: "Usage:\n  switchyard migrate [flags]"},
		{name: "no database", env: map[string]string{"NATS_URL": "nats://127.0.0.1:1"}, wantCode: 1, want: "DATABASE_URL: required"},
		{name: "unreachable NATS", env: map[string]string{"NATS_URL": "nats://127.0.0.1:1", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"},
			wantCode: 1, want: "connect nats nats://127.0.0.1:1"},
		{name: "bad setting", env: map[string]string{"NATS_STREAM_REPLICAS": "three", "DATABASE_URL": "postgres://x@127.0.0.1:1/x"},
			wantCode: 1, want: `NATS_STREAM_REPLICAS: "three" is not an integer`},
		{name: "stray argument", args: []string{"now"}, wantCode: 2, want: "usage:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := migrateCLI(t, tt.env, tt.args...)
			if code != tt.wantCode || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, want %d with %q:\n%s%s", code, tt.wantCode, tt.want, out, errOut)
			}
		})
	}
}

// TestMigrateNATSOnly: --nats-only needs no database and migrates the
// streams and consumers alone (what the gateway benchmark does).
func TestMigrateNATSOnly(t *testing.T) {
	b := testkit.EmptyNATS(t)
	out, errOut, code := migrateCLI(t, map[string]string{"NATS_URL": b.URL}, "--nats-only", "--json")
	if code != 0 {
		t.Fatalf("migrate --nats-only: exit %d\n%s%s", code, out, errOut)
	}
	var m migration.Report
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if c, u, n := m.Counts(); c != len(natsbus.StreamNames())+len(natsbus.Durables(natsbus.Options{})) || u != 0 || n != 0 || len(m.Postgres) != 0 {
		t.Errorf("migrate --nats-only: %+v, want every stream and consumer created and no tables", m)
	}
}
