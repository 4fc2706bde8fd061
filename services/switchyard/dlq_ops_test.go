package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector"
)

// `switchyard dlq replay --ops` acts through the status API, so the replay
// is recorded in the ops audit log under the token's name.
func TestDLQReplayThroughOpsIsAudited(t *testing.T) {
	ctx := context.Background()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	db := testkit.Postgres(t)
	ports := freePorts(t, 2)
	tok := randomHex(24)
	// The projector signs its replays with the operator's key; the
	// consumer, given the public key, handles only signed ones as replays.
	replayPub, replayKey, _ := ed25519.GenerateKey(rand.Reader)
	env := config.MapEnv(map[string]string{
		"SWITCHYARD_REPLAY_SIGNING_KEY": hex.EncodeToString(replayKey.Seed()), "SWITCHYARD_REPLAY_KEYS": hex.EncodeToString(replayPub),
		"NATS_URL": b.URL, "DATABASE_URL": db, "LOG_LEVEL": "warn",
		"PROJECTOR_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[0]), "OPS_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"SWITCHYARD_OPS_TOKENS": "oncall:read+operate:" + tok,
		// Its dead-letter actions log in as the operator (the test broker
		// checks no passwords; natsbus's permissions tests prove only the
		// operator may replay).
		"OPS_NATS_PASSWORD": "operator-test",
	})
	hubCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- projector.Run(hubCtx, env, io.Discard) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if err := waitReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[0]), 30*time.Second); err != nil {
		t.Fatal(err)
	}

	pool, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var healthy atomic.Bool
	var handled atomic.Int32
	c, err := consumer.New(js, ledger.New(pool), consumer.Config{Name: "provisioning", Stream: natsbus.StreamBilling, Subjects: []string{"billing.test.>"}, Create: true,
		ReplayKeys: []ed25519.PublicKey{replayPub}},
		func(ctx context.Context, m *consumer.Message) error {
			if !healthy.Load() {
				return errclass.Auth(errors.New("provisioning API: 401"))
			}
			if m.Header.Get(consumer.HeaderReplayFor) == "provisioning" && m.ID == "p-1" {
				handled.Add(1) // the replay, verified: handled as the original
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cstop := context.WithCancel(ctx)
	cdone := make(chan error, 1)
	go func() { cdone <- c.Run(cctx) }()
	defer func() { cstop(); <-cdone }()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "billing.test.provision", Data: []byte("x"), Header: nats.Header{"Nats-Msg-Id": {"p-1"}}}); err != nil {
		t.Fatal(err)
	}
	// The projector dead-letters the same bytes (not a billing message) on
	// its own: the two land in either order, so the sequence is read.
	var out strings.Builder
	var seq string
	testkit.WaitFor(t, 20*time.Second, "the dead letter", func() bool {
		out.Reset()
		run(ctx, []string{"dlq", "list", "--nats", b.URL, "--consumer", "provisioning", "--json"}, func(string) string { return "" }, nil, &out, io.Discard)
		var entries []dlqEntry
		if json.Unmarshal([]byte(out.String()), &entries) != nil || len(entries) != 1 {
			return false
		}
		seq = strconv.FormatUint(entries[0].Seq, 10)
		return true
	})
	healthy.Store(true)
	out.Reset()
	var errOut strings.Builder
	getenv := func(k string) string {
		return map[string]string{"SWITCHYARD_OPS_TOKEN": tok}[k]
	}
	if code := run(ctx, []string{"dlq", "replay", "--nats", b.URL, "--ops", fmt.Sprintf("http://127.0.0.1:%d", ports[1]), seq}, getenv, nil, &out, &errOut); code != 0 {
		t.Fatalf("dlq replay --ops: exit %d: %s %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "replayed to BILLING") {
		t.Fatalf("dlq replay --ops printed: %s / %s", out.String(), errOut.String())
	}
	testkit.WaitFor(t, 20*time.Second, "the replay handled", func() bool { return handled.Load() == 1 })
	var actor, action, result string
	if err := pool.QueryRow(ctx, `SELECT actor, action, result FROM ops_audit`).Scan(&actor, &action, &result); err != nil {
		t.Fatal(err)
	}
	if actor != "oncall" || action != "replay" || !strings.HasPrefix(result, "replayed to BILLING") {
		t.Fatalf("audit: %s %s %s", actor, action, result)
	}
}
