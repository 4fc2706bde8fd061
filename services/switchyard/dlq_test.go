package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/platform/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

func cli(t *testing.T, natsURL string, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"dlq"}, append(args[:1:1], append([]string{"--nats", natsURL}, args[1:]...)...)...),
		func(string) string { return "" }, nil, &out, &errOut)
	return out.String() + errOut.String(), code
}

// TestDLQListReplayDiscard drives the dead-letter CLI against a real consumer:
// two messages fail permanently, list shows them, a dry run changes nothing,
// a replay after the fix is handled under the original message id, and a
// discard needs a note.
func TestDLQListReplayDiscard(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	ctx := context.Background()
	if err := natsbus.Provision(ctx, js, natsbus.Options{}); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Open(ctx, testkit.Postgres(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fixed := false
	var handledIDs []string
	c, err := consumer.New(js, ledger.New(pool), consumer.Config{Name: "crm", Stream: natsbus.StreamBilling, Subjects: []string{"billing.>"}},
		func(ctx context.Context, m *consumer.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if !fixed {
				return errclass.Auth(errors.New("hubspot 401: token expired"))
			}
			handledIDs = append(handledIDs, m.ID)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	// A second consumer of the same subject, which handled the originals
	// fine: a replay for crm must not reach its handler again.
	var otherHandled atomic.Int64
	other, err := consumer.New(js, ledger.New(pool), consumer.Config{Name: "projector", Stream: natsbus.StreamBilling, Subjects: []string{"billing.>"}},
		func(ctx context.Context, m *consumer.Message) error { otherHandled.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- c.Run(cctx) }()
	go func() { done <- other.Run(cctx) }()
	defer func() { cancel(); <-done; <-done }()

	for _, id := range []string{"evt_dlq_one", "evt_dlq_two"} {
		msg := &nats.Msg{Subject: "billing.payment.failed", Data: []byte(`{"id":"` + id + `"}`), Header: nats.Header{"Nats-Msg-Id": {id}}}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
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

	mu.Lock()
	fixed = true // the operator fixed the token
	mu.Unlock()
	if out, code := cli(t, b.URL, "replay", one); code != 0 || !strings.Contains(out, "dead letter removed") {
		t.Fatalf("replay: %d %s", code, out)
	}
	testkit.WaitFor(t, 10*time.Second, "replayed message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handledIDs) == 1
	})
	if handledIDs[0] != "evt_dlq_one" {
		t.Errorf("replay handled as %q, want the original id evt_dlq_one", handledIDs[0])
	}
	testkit.WaitFor(t, 10*time.Second, "the other consumer settled the replay", func() bool {
		cons, err := js.Consumer(ctx, natsbus.StreamBilling, "projector")
		if err != nil {
			return false
		}
		i, err := cons.Info(ctx)
		return err == nil && i.NumPending == 0 && i.NumAckPending == 0 && i.Delivered.Stream == 3
	})
	if n := otherHandled.Load(); n != 2 {
		t.Errorf("the other consumer handled %d messages, want only the 2 originals (the replay was for crm)", n)
	}

	if out, code := cli(t, b.URL, "discard", two); code != 2 || !strings.Contains(out, "--note is required") {
		t.Errorf("discard without a note: %d %s", code, out)
	}
	if out, code := cli(t, b.URL, "discard", "--note", "customer deleted", two); code != 0 || !strings.Contains(out, "discarded") {
		t.Fatalf("discard: %d %s", code, out)
	}
	if out, _ := cli(t, b.URL, "list"); !strings.Contains(out, "no dead letters") {
		t.Fatalf("DLQ not empty after replay and discard: %s", out)
	}
	if _, code := cli(t, b.URL, "replay", "999"); code != 1 {
		t.Errorf("replay of an unknown sequence: exit %d, want 1", code)
	}
}
