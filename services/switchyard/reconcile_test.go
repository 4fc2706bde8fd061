package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/gateway"
	"github.com/switchyard/switchyard/services/identity"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/projector/client"
)

const (
	reconcileKey = "rk_test_reconcile0000000000" // the CLI's restricted key
	identityKey  = "rk_test_identity00000000000" // identity's, for its charge lookups
)

// TestReconcileHealsUndeliveredEvents is the closed loop: Stripe holds 100
// events of the last 72 hours, 17 of which never reached the hub. One
// reconcile publishes exactly those 17 through the gateway, identity turns
// them into billing events and the projector records them; a second run
// publishes nothing; --undelivered-only lists the 17; a 429 and a 503 are
// retried; a wrong key stops with an error naming STRIPE_API_KEY; --every
// heals an event that goes missing while it runs; an event the gateway
// rejects makes the run fail.
func TestReconcileHealsUndeliveredEvents(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	db := testkit.Postgres(t)
	ctx := context.Background()

	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{reconcileKey, identityKey}})
	var seen statusLog
	api := httptest.NewServer(seen.wrap(emu))
	defer api.Close()
	now := time.Now()
	events := seedStripe(t, emu, now, 100, func(i int) bool { return i%6 != 0 })
	var delivered, undelivered []stripeEventSeed
	for _, e := range events {
		if e.delivered {
			delivered = append(delivered, e)
		} else {
			undelivered = append(undelivered, e)
		}
	}
	if len(delivered) != 83 || len(undelivered) != 17 {
		t.Fatalf("seeded %d delivered and %d undelivered events, want 83 and 17", len(delivered), len(undelivered))
	}

	// The hub: gateway, identity (reading Stripe through the emulator) and
	// the projector, on one NATS and one database.
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
	done := make(chan error, 3)
	go func() { done <- gateway.Run(hubCtx, env, io.Discard) }()
	go func() { done <- identity.Run(hubCtx, env, io.Discard) }()
	go func() { done <- projector.Run(hubCtx, env, io.Discard) }()
	defer func() {
		stopHub()
		for range 3 {
			if err := <-done; err != nil {
				t.Errorf("service: %v", err)
			}
		}
	}()
	for _, u := range []string{"http://" + addr(4) + "/readyz", "http://" + addr(1) + "/readyz", "http://" + addr(2) + "/readyz"} {
		if err := waitReady(ctx, u, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Stripe delivered 83 of them.
	sendEnv := config.MapEnv(map[string]string{"STRIPE_WEBHOOK_SECRET": secret})
	for _, e := range delivered {
		var out, errOut bytes.Buffer
		if code := run(ctx, []string{"send", "--webhook-url", hook, "-"}, sendEnv, bytes.NewReader(e.raw), &out, &errOut); code != 0 {
			t.Fatalf("send %s (%s): exit %d\n%s%s", e.id, e.name, code, out.String(), errOut.String())
		}
	}
	stripeStream, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, stripeStream); n != 83 {
		t.Fatalf("STRIPE stream holds %d messages after delivery, want 83", n)
	}

	cliEnv := config.MapEnv(map[string]string{
		"STRIPE_API_KEY": reconcileKey, "STRIPE_API_BASE": api.URL, "STRIPE_WEBHOOK_SECRET": secret,
		"SWITCHYARD_WEBHOOK_URL": hook, "NATS_URL": b.URL,
	})
	undeliveredIDs := ids(undelivered)

	// A dry run shows the 17 and publishes nothing.
	rep := reconcileJSON(t, cliEnv, 0, "--since", "72h", "--dry-run", "--json")
	if rep.Listed != 100 || rep.AlreadyStored != 83 || rep.Missing != 17 || rep.Published != 0 || !rep.DryRun {
		t.Errorf("dry run: listed %d, stored %d, missing %d, published %d; want 100, 83, 17, 0", rep.Listed, rep.AlreadyStored, rep.Missing, rep.Published)
	}
	if got := reportIDs(rep, "would_publish"); !slices.Equal(got, undeliveredIDs) {
		t.Errorf("dry run would publish %v,\nwant the undelivered %v", got, undeliveredIDs)
	}
	if n := streamMsgs(t, stripeStream); n != 83 {
		t.Fatalf("the dry run changed the STRIPE stream: %d messages", n)
	}

	// The reconcile.
	var text bytes.Buffer
	if code := run(ctx, []string{"reconcile", "--dry-run"}, cliEnv, nil, &text, &text); code != 0 {
		t.Fatalf("text dry run: exit %d\n%s", code, text.String())
	}
	for _, want := range []string{"Stripe listed 100 events", "83 already stored, 17 missing", "Would publish:", undelivered[1].id + "  " + undelivered[1].typ,
		undelivered[1].customer + ": 1 event to heal", "(no customer in the event)", "Totals: listed 100, already stored 83, published 0"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	rep = reconcileJSON(t, cliEnv, 0, "--since", "72h", "--json")
	t.Logf("reconcile over 100 events: %.3fs, %d Stripe requests", rep.Seconds, rep.StripeRequests)
	if rep.Listed != 100 || rep.AlreadyStored != 83 || rep.Published != 17 || rep.Failed != 0 || rep.Duplicate != 0 {
		t.Errorf("listed %d, already stored %d, published %d, duplicate %d, failed %d; want 100, 83, 17, 0, 0",
			rep.Listed, rep.AlreadyStored, rep.Published, rep.Duplicate, rep.Failed)
	}
	if got := reportIDs(rep, "published"); !slices.Equal(got, undeliveredIDs) {
		t.Errorf("published %v,\nwant the undelivered %v", got, undeliveredIDs)
	}
	byID := map[string]stripeEventSeed{}
	for _, e := range events {
		byID[e.id] = e
	}
	healed := map[string]int{}
	for _, h := range rep.Events {
		e := byID[h.ID]
		if h.Type != e.typ || h.Customer != e.customer || h.Created.Unix() != e.created || h.GatewayStatus != http.StatusOK {
			t.Errorf("healed %+v, want type %s, customer %q, created %d, gateway 200", h, e.typ, e.customer, e.created)
		}
		healed[e.customer]++
	}
	for _, c := range rep.Customers {
		if healed[c.Customer] != c.Events {
			t.Errorf("customer %q: %d events healed in the summary, %d in the list", c.Customer, c.Events, healed[c.Customer])
		}
		delete(healed, c.Customer)
	}
	if len(healed) > 0 {
		t.Errorf("customers missing from the summary: %v", healed)
	}
	if n := streamMsgs(t, stripeStream); n != 100 {
		t.Errorf("STRIPE stream holds %d messages, want 100", n)
	}

	// Downstream is complete: every healed event that identity maps to a
	// billing event is in the projection, found by its Stripe id.
	pool, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mapped := billingMapped(t, undelivered)
	if len(mapped) == 0 || len(mapped) == len(undelivered) {
		t.Fatalf("identity maps %d of the 17 healed events to billing events; the seed should hold some it maps and some it does not", len(mapped))
	}
	t.Logf("identity maps %d of the 17 healed events to billing events", len(mapped))
	testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("the projection to record the %d healed events identity maps", len(mapped)), func() bool {
		return sourcesRecorded(t, pool, mapped) == len(mapped)
	})
	all := billingMapped(t, events)
	testkit.WaitFor(t, 60*time.Second, fmt.Sprintf("the projection to record all %d mapped events", len(all)), func() bool {
		return sourcesRecorded(t, pool, all) == len(all)
	})
	dlq, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, dlq); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}

	// Running it again heals nothing.
	rep = reconcileJSON(t, cliEnv, 0, "--since", "72h", "--json")
	// The daily digest counts the drift healed: the 17 events reconcile published.
	digest, err := client.New("http://"+addr(3), opsTok, 30*time.Second).Digest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if digest.StripeEvents != 100 || digest.DriftHealed != 17 || digest.FailuresOpen != 0 {
		t.Errorf("digest: %d Stripe events, %d healed, %d failures open; want 100, 17, 0", digest.StripeEvents, digest.DriftHealed, digest.FailuresOpen)
	}
	if rep.Listed != 100 || rep.AlreadyStored != 100 || rep.Published != 0 || len(rep.Events) != 0 || len(rep.Customers) != 0 {
		t.Errorf("second run: listed %d, stored %d, published %d, %d events; want 100, 100, 0, 0", rep.Listed, rep.AlreadyStored, rep.Published, len(rep.Events))
	}
	rep = reconcileJSON(t, cliEnv, 0, "--since", "72h", "--undelivered-only", "--json")
	if rep.Listed != 17 || rep.AlreadyStored != 17 || rep.Published != 0 || !rep.UndeliveredOnly {
		t.Errorf("--undelivered-only: listed %d, stored %d, published %d; want 17, 17, 0", rep.Listed, rep.AlreadyStored, rep.Published)
	}
	if n := streamMsgs(t, stripeStream); n != 100 {
		t.Errorf("STRIPE stream holds %d messages after the reruns, want 100", n)
	}

	t.Run("rate limited and failing Stripe is retried", func(t *testing.T) {
		emu.SetRateLimit(4)
		defer emu.SetRateLimit(0)
		emu.FailNext(1, http.StatusTooManyRequests)
		emu.FailNext(1, http.StatusServiceUnavailable)
		before := seen.count(http.StatusTooManyRequests)
		rep := reconcileJSON(t, cliEnv, 0, "--since", "72h", "--page-size", "10", "--json")
		if rep.Listed != 100 || rep.AlreadyStored != 100 || rep.Published != 0 {
			t.Errorf("listed %d, stored %d, published %d; want 100, 100, 0", rep.Listed, rep.AlreadyStored, rep.Published)
		}
		if got := seen.count(http.StatusTooManyRequests) - before; got < 1 || rep.StripeRetries < 2 {
			t.Errorf("%d answers were 429 and %d requests retried; want at least 1 and 2", got, rep.StripeRetries)
		}
		t.Logf("%d Stripe requests, %d retried, %.1fs", rep.StripeRequests, rep.StripeRetries, rep.Seconds)
	})

	t.Run("wrong key", func(t *testing.T) {
		before := seen.count(http.StatusUnauthorized)
		wrong := config.Overlay(cliEnv, map[string]string{"STRIPE_API_KEY": "rk_test_revoked0000000000000"})
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"reconcile", "--since", "72h"}, wrong, nil, &out, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), "STRIPE_API_KEY") {
			t.Errorf("exit %d, stderr %q; want 1 and an error naming STRIPE_API_KEY", code, errOut.String())
		}
		if strings.Contains(out.String()+errOut.String(), "rk_test_revoked") {
			t.Errorf("the key was echoed: %s%s", out.String(), errOut.String())
		}
		if got := seen.count(http.StatusUnauthorized) - before; got != 1 {
			t.Errorf("%d requests answered 401, want 1 (a rejected key is not retried)", got)
		}
	})

	t.Run("every heals what goes missing while it runs", func(t *testing.T) {
		var logs lockedBuffer
		runCtx, stop := context.WithCancel(ctx)
		exit := make(chan int, 1)
		go func() {
			exit <- run(runCtx, []string{"reconcile", "--since", "72h", "--every", "100ms"}, cliEnv, nil, io.Discard, &logs)
		}()
		exited := false
		defer func() {
			if !exited {
				stop()
				<-exit
			}
		}()
		testkit.WaitFor(t, 20*time.Second, "a run that finds everything stored", func() bool {
			return slices.ContainsFunc(logs.runs(t), func(r map[string]any) bool { return r["already_stored"] == 100.0 })
		})
		late := seedStripe(t, emu, now, 1, func(int) bool { return false })[0] // Stripe failed to deliver a new event
		testkit.WaitFor(t, 20*time.Second, "a run that heals the new event", func() bool {
			return slices.ContainsFunc(logs.runs(t), func(r map[string]any) bool { return r["published"] == 1.0 && r["listed"] == 101.0 })
		})
		stop()
		code := <-exit
		exited = true
		if code != 0 {
			t.Errorf("--every exited %d after cancel, want 0\n%s", code, logs.String())
		}
		if !strings.Contains(logs.String(), late.id) {
			t.Errorf("the healed event %s is not in the log:\n%s", late.id, logs.String())
		}
		if n := streamMsgs(t, stripeStream); n != 101 {
			t.Errorf("STRIPE stream holds %d messages, want 101", n)
		}
		var consumers []string
		names := stripeStream.ConsumerNames(ctx)
		for n := range names.Name() {
			consumers = append(consumers, n)
		}
		if !slices.Equal(consumers, []string{identity.DefaultConsumerName}) {
			t.Errorf("consumers on the STRIPE stream after %d scans: %v, want only identity's", len(logs.runs(t)), consumers)
		}
		for _, r := range logs.runs(t) {
			if (r["published"] != 0.0 && r["published"] != 1.0) || r["failed"] != 0.0 {
				t.Errorf("run %v: want at most the one event published and none failed", r)
			}
		}
	})

	t.Run("an event the gateway rejects fails the run", func(t *testing.T) {
		bad := seedStripe(t, emu, now, 1, func(int) bool { return false })[0]
		raw := bytes.Replace(bad.raw, []byte(`"api_version":"2023-10-16"`), []byte(`"api_version":"someday"`), 1)
		if bytes.Equal(raw, bad.raw) {
			t.Fatal("could not spoil the event")
		}
		if err := emu.AddEvent(raw, false); err != nil {
			t.Fatal(err)
		}
		rep := reconcileJSON(t, cliEnv, 1, "--since", "72h", "--json")
		if rep.Failed != 1 || rep.Published != 0 || len(rep.Events) != 1 {
			t.Fatalf("failed %d, published %d, %d events; want 1, 0, 1", rep.Failed, rep.Published, len(rep.Events))
		}
		if e := rep.Events[0]; e.ID != bad.id || e.Status != "failed" || e.GatewayStatus != http.StatusUnprocessableEntity || !strings.HasPrefix(e.Error, "invalid_event: api_version") {
			t.Errorf("event %+v, want %s failed with the gateway's 422 invalid_event", e, bad.id)
		}
		if len(rep.Customers) != 0 {
			t.Errorf("customers %v: nothing was healed", rep.Customers)
		}
	})
}

// TestReconcileStoredScan reads the STRIPE stream's ids without hanging on
// an empty stream, a window with nothing in it or a deleted tail, and
// refuses a window longer than the stream keeps messages.
func TestReconcileStoredScan(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	scan := func(from time.Time) []string {
		t.Helper()
		got, err := storedEventIDs(ctx, js, stream, from)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for id := range got {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	hourAgo := time.Now().Add(-time.Hour)
	if got := scan(hourAgo); len(got) != 0 {
		t.Errorf("empty stream: %v", got)
	}
	for _, id := range []string{"evt_scan00000001", "evt_scan00000002", "evt_scan00000003"} {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "stripe.events.invoice.paid", Data: []byte(`{}`), Header: nats.Header{wire.HeaderMsgID: {id}}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := scan(hourAgo); !slices.Equal(got, []string{"evt_scan00000001", "evt_scan00000002", "evt_scan00000003"}) {
		t.Errorf("three stored: %v", got)
	}
	if got := scan(time.Now().Add(time.Minute)); len(got) != 0 {
		t.Errorf("nothing since the start: %v", got)
	}
	if err := stream.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := scan(hourAgo); !slices.Equal(got, []string{"evt_scan00000001", "evt_scan00000002"}) {
		t.Errorf("deleted tail: %v", got)
	}

	env := config.MapEnv(map[string]string{"STRIPE_API_KEY": "rk_test_unused", "STRIPE_API_BASE": "http://127.0.0.1:1", "NATS_URL": b.URL})
	var errOut bytes.Buffer
	code := run(ctx, []string{"reconcile", "--since", "72h", "--dry-run"}, env, nil, io.Discard, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "keeps messages for 24h0m0s: --since must be at most 23h0m0s") {
		t.Errorf("window beyond the stream's max age: exit %d, %q", code, errOut.String())
	}
}

func TestReconcileUsage(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"beyond Stripe's 30 days", []string{"--since", "31d"}, "at most 30d"},
		{"not a duration", []string{"--since", "yesterday"}, "not a duration"},
		{"page size", []string{"--page-size", "101"}, "between 1 and 100"},
		{"arguments", []string{"evt_1"}, "usage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			code := run(context.Background(), append([]string{"reconcile"}, tt.args...), config.MapEnv(nil), nil, io.Discard, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), tt.want)
			}
		})
	}
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"reconcile"}, config.MapEnv(nil), nil, io.Discard, &errOut); code != 1 || !strings.Contains(errOut.String(), "STRIPE_API_KEY") {
		t.Errorf("no key: exit %d, stderr %q; want 1 naming STRIPE_API_KEY", code, errOut.String())
	}
}

// stripeEventSeed is one event the emulator holds.
type stripeEventSeed struct {
	id, name, typ string
	created       int64
	customer      string // what reconcile reports: data.object.customer, or the id of a customer object
	delivered     bool
	raw           []byte
}

var (
	seedObjectID = regexp.MustCompile(`"((?:cus|sub|in|ch|py|pi|dp|re|cs|si|il|ii)_[A-Za-z0-9_]+)"`)
	seedEmail    = regexp.MustCompile(`"([A-Za-z0-9._+-]+)@example\.com"`)
	seedSerial   int
	seedMu       sync.Mutex
)

// seedStripe adds n events to the emulator, made from the testkit
// fixtures in turn: each gets a fresh evt_ id, a created time within the
// last 72 hours, and its own customer (every object id and email in it is
// made unique; a charge or checkout session without a customer gets one).
// A dispute names only its charge, so the emulator also gets that charge,
// with its customer, for identity to look up. delivered(i) says whether
// Stripe delivered event i.
func seedStripe(t *testing.T, emu *stripeapi.Server, now time.Time, n int, delivered func(i int) bool) []stripeEventSeed {
	t.Helper()
	names := testkit.StripeEventNames(t)
	charge := fixtureObject(t, "charge.refunded")
	var out []stripeEventSeed
	for i := range n {
		seedMu.Lock()
		seedSerial++
		serial := seedSerial
		seedMu.Unlock()
		tag := fmt.Sprintf("R%04d", serial)
		name := names[i%len(names)]
		raw := seedObjectID.ReplaceAll(testkit.StripeEvent(t, name), []byte(`"${1}`+tag+`"`))
		raw = seedEmail.ReplaceAll(raw, []byte(`"${1}.`+strings.ToLower(tag)+`@example.com"`))
		var env map[string]json.RawMessage
		mustJSON(t, json.Unmarshal(raw, &env))
		var data map[string]json.RawMessage
		mustJSON(t, json.Unmarshal(env["data"], &data))
		var obj map[string]json.RawMessage
		mustJSON(t, json.Unmarshal(data["object"], &obj))
		e := stripeEventSeed{
			id: "evt_1Rec" + tag + randomHex(6), name: name, delivered: delivered(i),
			created: now.Add(-71*time.Hour).Unix() + int64(i)*2500 + int64(serial%7),
		}
		mustJSON(t, json.Unmarshal(env["type"], &e.typ))
		var kind string
		mustJSON(t, json.Unmarshal(obj["object"], &kind))
		switch kind {
		case "customer":
			mustJSON(t, json.Unmarshal(obj["id"], &e.customer))
		case "charge", "checkout.session":
			if string(obj["customer"]) == "null" {
				obj["customer"] = jsonString(t, "cus_Rec"+tag)
			}
			mustJSON(t, json.Unmarshal(obj["customer"], &e.customer))
		case "dispute":
			var chargeID string
			mustJSON(t, json.Unmarshal(obj["charge"], &chargeID))
			ch := map[string]json.RawMessage{}
			for k, v := range charge {
				ch[k] = v
			}
			ch["id"], ch["customer"] = jsonString(t, chargeID), jsonString(t, "cus_Rec"+tag)
			if err := emu.PutCharge(ch); err != nil {
				t.Fatal(err)
			}
		default:
			mustJSON(t, json.Unmarshal(obj["customer"], &e.customer))
		}
		data["object"] = jsonValue(t, obj)
		env["data"], env["id"], env["created"] = jsonValue(t, data), jsonString(t, e.id), jsonValue(t, e.created)
		e.raw = jsonValue(t, env)
		if err := emu.AddEvent(e.raw, e.delivered); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func fixtureObject(t *testing.T, name string) map[string]json.RawMessage {
	t.Helper()
	var env struct {
		Data struct {
			Object map[string]json.RawMessage `json:"object"`
		} `json:"data"`
	}
	mustJSON(t, json.Unmarshal(testkit.StripeEvent(t, name), &env))
	return env.Data.Object
}

// billingMapped returns the ids of the events identity's own mapping turns
// into at least one billing event (subscription updates that change only
// metadata, for one, map to none).
func billingMapped(t *testing.T, evs []stripeEventSeed) []string {
	t.Helper()
	var out []string
	for _, e := range evs {
		f, ev, err := identity.ExtractFacts(e.raw)
		if err != nil {
			t.Fatalf("%s (%s): %v", e.id, e.name, err)
		}
		outs, err := identity.Derive(ev, f, identity.Identity{CanonicalID: "cust_probe", StripeCustomerID: f.StripeCustomerID, Email: f.Email}, false)
		if err != nil {
			t.Fatalf("%s (%s): %v", e.id, e.name, err)
		}
		if len(outs) > 0 {
			out = append(out, e.id)
		}
	}
	return out
}

// sourcesRecorded counts the Stripe event ids among ids that the
// projection's event_sources holds.
func sourcesRecorded(t *testing.T, pool *pgxpool.Pool, ids []string) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(),
		`SELECT count(DISTINCT source_id) FROM projection.event_sources WHERE source_id = ANY($1)`, ids).Scan(&n)
	if err != nil {
		t.Fatalf("event_sources: %v", err)
	}
	return n
}

func reconcileJSON(t *testing.T, env func(string) string, wantCode int, args ...string) reconcileReport {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"reconcile"}, args...), env, nil, &out, &errOut)
	var rep reconcileReport
	if code != wantCode || json.Unmarshal(out.Bytes(), &rep) != nil {
		t.Fatalf("reconcile %v: exit %d (want %d)\n%s%s", args, code, wantCode, out.String(), errOut.String())
	}
	return rep
}

func reportIDs(rep reconcileReport, status string) []string {
	var out []string
	for _, e := range rep.Events {
		if e.Status == status {
			out = append(out, e.ID)
		}
	}
	slices.Sort(out)
	return out
}

func ids(evs []stripeEventSeed) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.id)
	}
	slices.Sort(out)
	return out
}

func streamMsgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func mustJSON(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func jsonValue(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	mustJSON(t, err)
	return b
}

func jsonString(t *testing.T, s string) json.RawMessage { return jsonValue(t, s) }

// statusLog counts the emulator's answers to GET /v1/events by status.
type statusLog struct {
	mu     sync.Mutex
	counts map[int]int
}

func (l *statusLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rw, r)
		if r.URL.Path == "/v1/events" {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.counts == nil {
				l.counts = map[int]int{}
			}
			l.counts[rw.status]++
		}
	})
}

func (l *statusLog) count(status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[status]
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// lockedBuffer is the stderr of a running command, read while it writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runs returns the "reconcile run" log lines.
func (b *lockedBuffer) runs(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		if m["msg"] == "reconcile run" {
			out = append(out, m)
		}
	}
	return out
}
