package projector_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector"
)

// command runs `projector args...` with only env set.
func command(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := projector.Command(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestRebuildDirectIsAudited: a rebuild run from the projector's binary
// itself (no projector running) is recorded in the ops audit log like one
// through the status API, under the user who ran it.
func TestRebuildDirectIsAudited(t *testing.T) {
	b := testkit.NATS(t)
	ctx := context.Background()
	dbURL := testkit.Postgres(t)
	env := map[string]string{"DATABASE_URL": dbURL, "NATS_URL": b.URL, "USER": "grace"}
	if out, err := command(t, env, "rebuild", "--direct"); err != nil || !strings.Contains(out, "rebuilt the projection: 0 events") {
		t.Fatalf("rebuild --direct: %v: %s", err, out)
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
	if _, err := command(t, env, "rebuild"); !errors.Is(err, projector.ErrUsage) {
		t.Errorf("rebuild without --direct: %v, want the usage", err)
	}
}

// TestDLQDirectReplayDiscard: with no projector running, `projector dlq
// replay|discard --direct` resolves dead letters from this process: a
// replay after the fix is handled under the original message id by the
// consumer that failed only, a discard needs a note, and both are in the
// audit log under the user who ran the command.
func TestDLQDirectReplayDiscard(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	ctx := context.Background()
	scene := testkit.StartDeadLetterScene(t, js, "evt_dlq_one", "evt_dlq_two")
	dbURL := scene.DatabaseURL
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	dlq, err := deadletter.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	var entries []deadletter.Entry
	testkit.WaitFor(t, 10*time.Second, "two dead letters", func() bool {
		entries, err = dlq.List(ctx, deadletter.Filter{}, nil)
		return err == nil && len(entries) == 2
	})
	seqOf := map[string]string{}
	for _, e := range entries {
		seqOf[e.OriginalMsgID] = strconv.FormatUint(e.Seq, 10)
	}
	one, two := seqOf["evt_dlq_one"], seqOf["evt_dlq_two"]
	if one == "" || two == "" {
		t.Fatalf("entries %+v", entries)
	}
	scene.Fix() // the operator fixed the token

	env := map[string]string{"NATS_URL": b.URL}
	if out, err := command(t, env, "dlq", "replay", "--direct", one); err == nil || !strings.Contains(out+err.Error(), "DATABASE_URL") {
		t.Fatalf("replay --direct with no DATABASE_URL: %v %s", err, out)
	}
	env = map[string]string{"DATABASE_URL": dbURL, "NATS_URL": b.URL, "USER": "ada"}
	if out, err := command(t, env, "dlq", "replay", "--direct", one); err != nil || !strings.Contains(out, "replayed to BILLING") {
		t.Fatalf("replay: %v %s", err, out)
	}
	testkit.WaitFor(t, 10*time.Second, "replayed message handled", func() bool { return len(scene.Handled()) == 1 })
	if handled := scene.Handled(); handled[0] != "evt_dlq_one" {
		t.Errorf("replay handled as %q, want the original id evt_dlq_one", handled[0])
	}
	testkit.WaitFor(t, 10*time.Second, "the other consumer settled the replay", func() bool {
		cons, err := js.Consumer(ctx, natsbus.StreamBilling, "projector")
		if err != nil {
			return false
		}
		i, err := cons.Info(ctx)
		return err == nil && i.NumPending == 0 && i.NumAckPending == 0 && i.Delivered.Stream == 3
	})
	if n := scene.OtherHandled(); n != 2 {
		t.Errorf("the other consumer handled %d messages, want only the 2 originals (the replay was for crm)", n)
	}

	if out, err := command(t, env, "dlq", "discard", "--direct", two); !errors.Is(err, projector.ErrUsage) || !strings.Contains(out, "--note is required") {
		t.Errorf("discard without a note: %v %s", err, out)
	}
	if out, err := command(t, env, "dlq", "discard", "--direct", "--note", "customer deleted", two); err != nil || !strings.Contains(out, "discarded") {
		t.Fatalf("discard: %v %s", err, out)
	}
	rows, err := pool.Query(ctx, `SELECT actor, action, target, note, result FROM ops_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	type action struct{ Actor, Action, Target, Note, Result string }
	audit, err := pgx.CollectRows(rows, pgx.RowToStructByPos[action])
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 ||
		audit[0].Actor != "cli:ada" || audit[0].Action != "replay" || audit[0].Target != "dlq "+one+" (crm, evt_dlq_one)" || !strings.HasPrefix(audit[0].Result, "replayed to BILLING") ||
		audit[1].Actor != "cli:ada" || audit[1].Action != "discard" || audit[1].Note != "customer deleted" || audit[1].Result != "discarded" {
		t.Errorf("audit log: %+v", audit)
	}
	if left, err := dlq.List(ctx, deadletter.Filter{}, nil); err != nil || len(left) != 0 {
		t.Fatalf("DLQ not empty after replay and discard: %v %+v", err, left)
	}
	if _, err := command(t, env, "dlq", "replay", "--direct", "999"); err == nil {
		t.Errorf("replay of an unknown sequence: no error")
	}
}
