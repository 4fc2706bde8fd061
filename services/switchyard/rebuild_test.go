package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRebuildDirectNamesTheProjectorCommand: rebuilding from a process
// takes the projector's code, which the CLI does not link; `rebuild
// --direct` says which command does it (projector rebuild --direct, whose
// test is services/projector's TestRebuildDirectIsAudited) and touches
// nothing.
func TestRebuildDirectNamesTheProjectorCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none"}
	code := run(context.Background(), []string{"rebuild", "--direct", "--nats", "nats://127.0.0.1:1"}, func(k string) string { return env[k] }, nil, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "projector rebuild --direct") {
		t.Fatalf("rebuild --direct: exit %d: %s%s", code, out.String(), errOut.String())
	}
}
