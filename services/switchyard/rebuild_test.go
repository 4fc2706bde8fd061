package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
)

// TestRebuildDirectIsAudited: a rebuild run from the CLI itself (the
// projector down) is recorded in the ops audit log like one through the
// status API, under the user who ran it.
func TestRebuildDirectIsAudited(t *testing.T) {
	b := testkit.NATS(t)
	ctx := context.Background()
	dbURL := testkit.Postgres(t)
	env := map[string]string{"DATABASE_URL": dbURL, "USER": "grace"}
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"rebuild", "--direct", "--nats", b.URL}, func(k string) string { return env[k] }, nil, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "rebuilt the projection: 0 events") {
		t.Fatalf("rebuild --direct: exit %d: %s%s", code, out.String(), errOut.String())
	}
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var actor, action, target, result string
	if err := pool.QueryRow(ctx, `SELECT actor, action, target, result FROM ops_audit`).Scan(&actor, &action, &target, &result); err != nil {
		t.Fatal(err)
	}
	if actor != "cli:grace" || action != "rebuild" || target != "projection" || !strings.HasPrefix(result, "0 events, 0 customers") {
		t.Errorf("audit: %s %s %s %q", actor, action, target, result)
	}
}
