package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

func cli(t *testing.T, natsURL string, args ...string) (string, int) {
	t.Helper()
	return cliEnv(t, nil, natsURL, args...)
}

// cliEnv runs switchyard dlq with only env set.
func cliEnv(t *testing.T, env map[string]string, natsURL string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"dlq"}, append(args[:1:1], append([]string{"--nats", natsURL}, args[1:]...)...)...),
		func(k string) string { return env[k] }, nil, &out, &errOut)
	return out.String() + errOut.String(), code
}

// TestDLQListReplayDiscard drives the dead-letter CLI against a real consumer:
// two messages fail permanently, list shows them, a dry run changes nothing,
// an action with no projector to go through refuses and says how to act
// anyway, and a discard needs a note. Replays and discards through the
// status API are dlq_ops_test's; from the projector's host,
// services/projector's TestDLQDirectReplayDiscard.
func TestDLQListReplayDiscard(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	scene := testkit.StartDeadLetterScene(t, js, "evt_dlq_one", "evt_dlq_two")
	var entries []dlqEntry
	testkit.WaitFor(t, 10*time.Second, "two dead letters", func() bool {
		out, code := cli(t, b.URL, "list", "--json")
		entries = nil
		if code != 0 || json.Unmarshal([]byte(out), &entries) != nil {
			t.Fatalf("list: %d %s", code, out)
		}
		return len(entries) == 2
	})
	seqOf := map[string]string{}
	for _, e := range entries {
		if e.Consumer != "crm" || e.Class != "auth" || !strings.Contains(e.Reason, "401") || e.OriginalSubject != "billing.payment.failed" {
			t.Fatalf("entry %+v", e)
		}
		seqOf[e.OriginalMsgID] = strconv.FormatUint(e.Seq, 10)
	}
	one, two := seqOf["evt_dlq_one"], seqOf["evt_dlq_two"]
	if one == "" || two == "" {
		t.Fatalf("entries %+v", entries)
	}
	if out, code := cli(t, b.URL, "list", "--class", "permanent"); code != 0 || !strings.Contains(out, "no dead letters") {
		t.Errorf("class filter: %d %s", code, out)
	}

	if out, code := cli(t, b.URL, "replay", "--dry-run", one); code != 0 || !strings.Contains(out, "would publish") {
		t.Fatalf("dry run: %d %s", code, out)
	}
	if out, _ := cli(t, b.URL, "list", "--json"); strings.Count(out, `"seq"`) != 2 {
		t.Fatalf("dry run changed the DLQ: %s", out)
	}

	scene.Fix() // the operator fixed the token
	// With no projector to go through, an action refuses rather than going
	// unrecorded, and says how to act anyway.
	if out, code := cli(t, b.URL, "replay", "--ops", "http://127.0.0.1:1", "--data-dir", t.TempDir(), one); code != 1 || !strings.Contains(out, "--direct") {
		t.Fatalf("replay with no projector and no token: %d %s", code, out)
	}
	down := map[string]string{"SWITCHYARD_OPS_TOKEN": "a-token-for-a-projector-that-is-down"}
	if out, code := cliEnv(t, down, b.URL, "replay", "--ops", "http://127.0.0.1:1", one); code != 1 || !strings.Contains(out, "--direct") || strings.Contains(out, "no dead letters matched") {
		t.Fatalf("replay with the projector down: %d %s", code, out)
	}
	// Acting from here takes the projector's code: --direct names the
	// command that does (its test is services/projector's
	// TestDLQDirectReplayDiscard) and changes nothing.
	env := map[string]string{"DATABASE_URL": scene.DatabaseURL, "USER": "ada"}
	if out, code := cliEnv(t, env, b.URL, "replay", "--direct", one); code != 1 || !strings.Contains(out, "projector dlq replay --direct") {
		t.Fatalf("replay --direct: %d %s", code, out)
	}
	if out, code := cliEnv(t, env, b.URL, "discard", "--direct", "--note", "customer deleted", two); code != 1 || !strings.Contains(out, "projector dlq discard --direct") {
		t.Fatalf("discard --direct: %d %s", code, out)
	}
	if out, code := cli(t, b.URL, "replay", "--direct", "--ops", "http://127.0.0.1:1", one); code != 2 || !strings.Contains(out, "exclude each other") {
		t.Fatalf("replay --direct --ops: %d %s", code, out)
	}
	if out, code := cli(t, b.URL, "discard", "--dry-run", "--note", "n", one); code != 2 || !strings.Contains(out, "--dry-run is for replay") {
		t.Fatalf("discard --dry-run: %d %s", code, out)
	}
	if out, code := cli(t, b.URL, "discard", two); code != 2 || !strings.Contains(out, "--note is required") {
		t.Errorf("discard without a note: %d %s", code, out)
	}
	if out, _ := cli(t, b.URL, "list", "--json"); strings.Count(out, `"seq"`) != 2 {
		t.Fatalf("refused actions changed the DLQ: %s", out)
	}
	if handled := scene.Handled(); len(handled) != 0 {
		t.Errorf("handled %v; want nothing replayed", handled)
	}
}

// Help is printed before anything connects: with NATS_URL naming a server
// that is not there, `dlq --help` still answers at once with the usage and
// exit 0, and an unknown subcommand is refused without a connection attempt.
func TestDLQHelpNeedsNoNATS(t *testing.T) {
	env := func(k string) string {
		if k == "NATS_URL" {
			return "nats://127.0.0.1:1" // nothing listens there
		}
		return ""
	}
	for _, tc := range []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"dlq", "--help"}, 0, "switchyard dlq list"},
		{[]string{"dlq", "-h"}, 0, "switchyard dlq list"},
		{[]string{"dlq", "help"}, 0, "switchyard dlq list"},
		{[]string{"dlq", "list", "-h"}, 0, "switchyard dlq list"},
		{[]string{"dlq", "frobnicate"}, 2, `unknown subcommand "frobnicate"`},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, env, nil, &out, &errOut)
		all := out.String() + errOut.String()
		if code != tc.wantCode || !strings.Contains(all, tc.want) || strings.Contains(all, "connect") {
			t.Errorf("%v: exit %d, output %q; want exit %d and %q, no connection", tc.args, code, all, tc.wantCode, tc.want)
		}
	}
}
