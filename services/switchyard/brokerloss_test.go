package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/gateway"
	"github.com/switchyard/switchyard/services/identity"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/projector/client"
)

// TestReconcileRestoresWhatTheBrokerLost is issue 14's "reconcile heals
// what a broker still loses": Stripe got a 200 for all 60 events, so it
// will never send them again, but the broker loses its newest 30 writes
// (a power failure before they reached the disk) — 20 that identity had
// not read yet and 10 it had already turned into billing events. The
// broker restarts from what it kept (its duplicate window rebuilt from the
// stream, as after a real crash). One scheduled reconcile publishes exactly
// the 30 through the gateway; every customer's view then holds every
// event's facts, the 10 handled twice change nothing, nothing dead-letters,
// and a second reconcile publishes none.
func TestReconcileRestoresWhatTheBrokerLost(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	db := testkit.Postgres(t)
	ctx := context.Background()

	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{reconcileKey, identityKey}})
	api := httptest.NewServer(emu)
	defer api.Close()
	events := seedStripe(t, emu, time.Now(), 60, func(int) bool { return true })

	ports := freePorts(t, 5)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	secret := "whsec_" + randomHex(16)
	opsTok := randomHex(24)
	hook := "http://" + addr(0) + "/webhooks/stripe"
	env := config.MapEnv(map[string]string{
		"NATS_URL": b.URL, "DATABASE_URL": db, "LOG_LEVEL": "warn", "SWITCHYARD_ENV": gateway.EnvDevelopment,
		"STRIPE_WEBHOOK_SECRET": secret, "GATEWAY_ADDR": addr(0), "GATEWAY_ADMIN_ADDR": addr(4),
		"IDENTITY_ADDR": addr(1), "STRIPE_API_KEY": identityKey, "STRIPE_API_BASE": api.URL,
		"PROJECTOR_ADDR": addr(2), "OPS_ADDR": addr(3), "SWITCHYARD_OPS_TOKENS": "test:read+operate:" + opsTok,
	})
	hubCtx, stopHub := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- gateway.Run(hubCtx, env, io.Discard) }()
	go func() { done <- projector.Run(hubCtx, env, io.Discard) }()
	defer func() {
		stopHub()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("service: %v", err)
			}
		}
	}()
	startIdentity := func() (stop func()) {
		ictx, cancel := context.WithCancel(hubCtx)
		idone := make(chan error, 1)
		go func() { idone <- identity.Run(ictx, env, io.Discard) }()
		if err := waitReady(ctx, "http://"+addr(1)+"/readyz", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		return func() {
			cancel()
			if err := <-idone; err != nil {
				t.Errorf("identity: %v", err)
			}
		}
	}
	stopIdentity := startIdentity()
	for _, u := range []string{"http://" + addr(4) + "/readyz", "http://" + addr(2) + "/readyz"} {
		if err := waitReady(ctx, u, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deliver := func(evs []stripeEventSeed) {
		t.Helper()
		for _, e := range evs {
			if status, answer := postSigned(t, hook, secret, e.raw); status != http.StatusOK {
				t.Fatalf("deliver %s: %d %s", e.id, status, answer)
			}
		}
	}

	// Stripe delivers 40; the hub handles them.
	deliver(events[:40])
	handled := billingMapped(t, events[:40])
	testkit.WaitFor(t, 60*time.Second, "the first 40 events projected", func() bool { return sourcesRecorded(t, pool, handled) == len(handled) })
	ops := client.New("http://"+addr(3), opsTok, 30*time.Second)
	views := func(evs []stripeEventSeed) map[string]string {
		out := map[string]string{}
		for _, e := range evs {
			if e.customer == "" {
				continue
			}
			found, err := ops.FindCustomers(ctx, client.ByStripeCustomer, e.customer)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range found {
				view, err := ops.Customer(ctx, c.CustomerID)
				if err != nil {
					t.Fatal(err)
				}
				view.State, view.States = "", nil // evaluated at read time
				b, err := json.Marshal(view)
				mustJSON(t, err)
				out[c.CustomerID] = string(b)
			}
		}
		return out
	}
	before := views(events[30:40])
	if len(before) == 0 {
		t.Fatal("no customer views for events 30–40")
	}

	// Then 20 more, stored while identity is down: Stripe got 200 for each.
	stopIdentity()
	deliver(events[40:])
	stripe, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stripe.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 60 {
		t.Fatalf("STRIPE holds %d events, want 60", info.State.Msgs)
	}
	// The power failure: the newest 30 writes never reached the disk.
	for seq := info.State.LastSeq - 29; seq <= info.State.LastSeq; seq++ {
		if err := stripe.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	b.Restart()
	stopIdentity = startIdentity()
	defer stopIdentity()

	cliEnv := config.MapEnv(map[string]string{
		"STRIPE_API_KEY": reconcileKey, "STRIPE_API_BASE": api.URL, "STRIPE_WEBHOOK_SECRET": secret,
		"SWITCHYARD_WEBHOOK_URL": hook, "NATS_URL": b.URL,
	})
	var rep reconcileReport
	testkit.WaitFor(t, 30*time.Second, "the gateway back on the restarted broker", func() bool {
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"reconcile", "--since", "72h", "--json"}, cliEnv, nil, &out, &errOut)
		if code != 0 || json.Unmarshal(out.Bytes(), &rep) != nil {
			t.Logf("reconcile: exit %d %s", code, errOut.String())
			return false
		}
		return true
	})
	lost := ids(events[30:])
	if rep.Listed != 60 || rep.AlreadyStored != 30 || rep.Published != 30 || rep.Failed != 0 || rep.Duplicate != 0 {
		t.Errorf("reconcile: listed %d, stored %d, published %d, duplicate %d, failed %d; want 60, 30, 30, 0, 0",
			rep.Listed, rep.AlreadyStored, rep.Published, rep.Duplicate, rep.Failed)
	}
	if got := reportIDs(rep, "published"); !slices.Equal(got, lost) {
		t.Errorf("published %v,\nwant the 30 lost %v", got, lost)
	}
	all := billingMapped(t, events)
	testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("all %d mapped events projected", len(all)), func() bool { return sourcesRecorded(t, pool, all) == len(all) })
	testkit.WaitFor(t, 30*time.Second, "identity and the projector idle", func() bool {
		for _, c := range [][2]string{{natsbus.StreamStripe, identity.DefaultConsumerName}, {natsbus.StreamBilling, projector.ConsumerName}} {
			if ok, err := testkit.Settled(ctx, js, c[0], c[1]); err != nil || !ok {
				return false // an error: the healed broker still recovering
			}
		}
		return true
	})
	if after := views(events[30:40]); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the views of customers whose handled events were lost changed after healing:\nbefore %v\nafter  %v", before, after)
	}
	dlq, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, dlq); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if n := streamMsgs(t, stripe); n != 60 {
		t.Errorf("STRIPE holds %d events after healing, want 60", n)
	}
	if rep := reconcileJSON(t, cliEnv, 0, "--since", "72h", "--json"); rep.Published != 0 || rep.AlreadyStored != 60 {
		t.Errorf("second reconcile: stored %d, published %d; want 60, 0", rep.AlreadyStored, rep.Published)
	}
}
