package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/emulator/statefile"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/devkit/testkit/fixtures"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/platform/stripesig"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector"
)

const devStripeTestSecret = "whsec_devStripeEmulatorTest0001"

// devStripeHub is one in-process `switchyard dev` of the Stripe emulator
// tests, on the test's NATS and PostgreSQL.
type devStripeHub struct {
	data    string
	args    []string
	env     func(string) string
	gateway string // host:port
	emu     *stripeapi.Server
	stdout  *lockedBuffer
	stop    func()
}

// startDevStripeHub runs dev with env over the test's NATS and PostgreSQL
// until its banner, and returns it with the Stripe emulator it started
// (nil when it started none).
func startDevStripeHub(t *testing.T, data string, ports []int, env func(string) string) *devStripeHub {
	t.Helper()
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	h := &devStripeHub{data: data, env: env, gateway: addr(0)}
	h.args = []string{"dev", "--data-dir", data, "--gateway-addr", addr(0), "--gateway-admin-addr", addr(10), "--identity-addr", addr(1), "--crm-addr", addr(2),
		"--hubspot-addr", addr(3), "--support-addr", addr(4), "--zendesk-addr", addr(5), "--alerts-addr", addr(6),
		"--slack-addr", addr(7), "--projector-addr", addr(8), "--ops-addr", addr(9)}
	var mu sync.Mutex
	devStripeStarted = func(s *stripeapi.Server) { mu.Lock(); h.emu = s; mu.Unlock() }
	t.Cleanup(func() { devStripeStarted = nil })

	h.stdout, h.stop = startDevInProcess(t, h.args, env, 90*time.Second)
	mu.Lock()
	defer mu.Unlock()
	return h
}

// postSigned posts a fixture event to the gateway, signed like Stripe.
func (h *devStripeHub) postSigned(t *testing.T, name string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.gateway+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", stripesig.Sign(body, time.Now(), devStripeTestSecret))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", name, err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("post %s: %d %s", name, res.StatusCode, answer)
	}
}

// fixtureEventsByCreated returns every fixture event, oldest first, as
// Stripe sends them.
func fixtureEventsByCreated(t *testing.T) []fixtures.File {
	t.Helper()
	events, err := fixtures.StripeEvents()
	if err != nil {
		t.Fatal(err)
	}
	created := func(f fixtures.File) int64 {
		var e struct {
			Created int64 `json:"created"`
		}
		if err := json.Unmarshal(f.Data, &e); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		return e.Created
	}
	slices.SortStableFunc(events, func(a, b fixtures.File) int { return int(created(a) - created(b)) })
	return events
}

// TestDevStripeEmulatorServesEveryFixture is `make run` with no Stripe
// credentials, and every fixture event a developer sends: dev runs the
// Stripe emulator (its URL and key in stripe-api.json, 0600, and in the
// banner), seeded with the fixtures' objects, and points identity at it.
// Every event, and a fresh one of every type made by `switchyard trigger`,
// goes through without a dead letter, the refund and the
// dispute (which name only their charge, so identity asks Stripe whose it
// is) reach the projection, every request identity made of the emulator
// was answered 200 (among them the dispute's charge and the plans'
// product), and `switchyard doctor`'s Stripe check finds the gateway's
// webhook endpoint configured.
func TestDevStripeEmulatorServesEveryFixture(t *testing.T) {
	b := testkit.NATS(t)
	dbURL := testkit.Postgres(t)
	env := config.MapEnv(map[string]string{"NATS_URL": b.URL, "DATABASE_URL": dbURL, "LOG_LEVEL": "warn", "STRIPE_WEBHOOK_SECRET": devStripeTestSecret})
	data := filepath.Join(t.TempDir(), "hub")
	h := startDevStripeHub(t, data, freePorts(t, 11), env)
	if h.emu == nil {
		t.Fatal("dev started no Stripe emulator without Stripe credentials")
	}

	info, err := readDevStripeEmulator(data)
	if err != nil {
		t.Fatalf("stripe-api.json: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(data, devStripeEmulatorFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stripe-api.json: %v, want mode 0600", err)
	}
	var keys map[string]string
	if raw, _ := os.ReadFile(filepath.Join(data, devStripeEmulatorFile)); json.Unmarshal(raw, &keys) != nil || len(keys) != 2 || keys["url"] == "" || keys["api_key"] == "" {
		t.Errorf("stripe-api.json = %v, want exactly url and api_key", keys)
	}
	if len(info.APIKey) < len("sk_test_")+32 || !strings.HasPrefix(info.URL, "http://127.0.0.1:") {
		t.Errorf("stripe-api.json = %+v, want a loopback URL and a random sk_test_ key", info)
	}
	if !strings.Contains(h.stdout.String(), "Stripe API:      emulator at "+info.URL) {
		t.Errorf("the banner does not say where the Stripe emulator listens (%s):\n%s", info.URL, h.stdout.String())
	}
	if res := stripeGet(t, info, "/v1/customers/cus_OnMHOpJU2HN6Xv", info.APIKey); res != http.StatusOK {
		t.Errorf("the emulator at the file's URL with its key: GET a seeded customer answered %d", res)
	}
	if res := stripeGet(t, info, "/v1/customers/cus_OnMHOpJU2HN6Xv", "sk_test_"+strings.Repeat("0", 48)); res != http.StatusUnauthorized {
		t.Errorf("the emulator with another test key answered %d, want 401", res)
	}

	before := len(h.emu.Requests()) // the test's own requests above
	events := fixtureEventsByCreated(t)
	names := make([]string, len(events))
	for i, f := range events {
		names[i] = f.Name
		h.postSigned(t, f.Name, f.Data)
	}
	for _, want := range []string{"charge.refunded", "charge.dispute.created", "checkout.session.completed", "invoice.paid"} {
		if !slices.Contains(names, want) {
			t.Fatalf("the fixtures lack %s: %v", want, names)
		}
	}
	// And a fresh event of every type, as a developer makes them with
	// `switchyard trigger`: registered with dev's emulator (the event and
	// the objects it names, under new ids), then delivered signed.
	cliEnv := map[string]string{"STRIPE_WEBHOOK_SECRET": devStripeTestSecret, "SWITCHYARD_WEBHOOK_URL": "http://" + h.gateway + "/webhooks/stripe"}
	for _, name := range triggerEventNames() {
		if out, errOut, code := runCLI(t, cliEnv, "trigger", name, "--data-dir", data); code != exitOK || !strings.Contains(out, "registered with the Stripe API emulator at "+info.URL) {
			t.Fatalf("trigger %s: exit %d\n%s%s", name, code, out, errOut)
		}
	}

	// Every consumer has handled everything: nothing pending, nothing
	// waiting for an ack (a retry in backoff would be).
	nc, js := b.Connect(t)
	defer nc.Close()
	ctx := context.Background()
	var busy string
	caughtUp := func() bool {
		for _, d := range natsbus.Durables(natsbus.Options{}) {
			ok, err := testkit.Settled(ctx, js, d.Stream, d.Name)
			if err != nil || !ok {
				busy = fmt.Sprintf("%s not settled (%v)", d, err)
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(90 * time.Second); !caughtUp(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			all, err := testkit.Busy(ctx, js)
			t.Fatalf("consumers not caught up within 90s: %s; busy: %v (%v)", busy, all, err)
		}
	}
	dlq, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	// A retry in backoff may not count as unacked: a dead letter that
	// comes a little later is caught here.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if si, err := dlq.Info(ctx); err == nil && si.State.Msgs > 0 {
			break // reported below, with the reasons
		}
	}
	if si, err := dlq.Info(ctx); err != nil || si.State.Msgs != 0 {
		t.Errorf("DLQ holds %d dead letters (%v), want none:\n%s", si.State.Msgs, err, deadLetterReasons(t, dlq))
	}

	// The refund and the dispute are in the projection, as the domain
	// events identity made of them.
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sources := pgx.Identifier{projector.Schema, "event_sources"}.Sanitize()
	projected := pgx.Identifier{projector.Schema, "events"}.Sanitize()
	for _, want := range []struct{ fixture, subject string }{
		{"charge.refunded", subjects.BillingRefundIssued},
		{"charge.dispute.created", subjects.BillingDisputeOpened},
	} {
		evtID := reFixtureEventID(testkit.StripeEvent(t, want.fixture))
		testkit.WaitFor(t, 30*time.Second, want.fixture+" projected as "+want.subject, func() bool {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM `+sources+` s JOIN `+projected+` e ON e.event_id = s.event_id
				WHERE s.source_id = $1 AND e.subject = $2`, evtID, want.subject).Scan(&n)
			return err == nil && n == 1
		})
	}

	// identity asked the emulator, and every answer was a 200.
	var asked []string
	for _, r := range h.emu.Requests()[before:] {
		if !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		asked = append(asked, r.Method+" "+r.Path)
		if r.Status != http.StatusOK {
			t.Errorf("the Stripe emulator answered %s %s with %d", r.Method, r.Path, r.Status)
		}
	}
	for _, want := range []string{"GET /v1/charges/ch_1NzlYeGgdF1VjufLh34inorG", "GET /v1/products/prod_OnMHDH6VBmYlTr"} {
		if !slices.Contains(asked, want) {
			t.Errorf("identity never asked %s; it asked %v", want, asked)
		}
	}

	// switchyard doctor, pointed at dev's emulator with the file's URL and
	// key, finds the gateway's endpoint configured.
	doc := loadDoctorConfig(config.MapEnv(map[string]string{"STRIPE_API_KEY": info.APIKey, "STRIPE_API_BASE": info.URL}), "http://"+h.gateway+"/webhooks/stripe")
	if r := checkStripeEndpoint(ctx, http.DefaultClient, doc); r.Status != checkOK {
		t.Errorf("doctor's stripe check against dev: %s: %s", r.Status, r.Detail)
	}
}

func stripeGet(t *testing.T, info devStripeEmulator, path, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, info.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// deadLetterReasons lists the DLQ's messages, for a failure message.
func deadLetterReasons(t *testing.T, dlq jetstream.Stream) string {
	t.Helper()
	var out []string
	for seq := uint64(1); seq <= 50; seq++ {
		m, err := dlq.GetMsg(context.Background(), seq)
		if err != nil {
			break
		}
		out = append(out, fmt.Sprintf("%s %v", m.Subject, m.Header))
	}
	return strings.Join(out, "\n")
}

// registerEvent posts raw to dev's Stripe emulator's POST /_emulator/events.
func registerEvent(t *testing.T, info devStripeEmulator, raw []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, info.URL+stripeapi.EmulatorEventsPath, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+info.APIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// TestDevStripeEmulatorKeepsStateAndYieldsToRealKeys: an event registered
// in dev's Stripe emulator is saved before it is answered (a copy of the
// state taken then, as a kill -9 would leave it, holds its object), and
// after a restart on the same data folder the emulator has the same key,
// the registered and the seeded objects, and takes the same event again
// (200) but not other bytes under its id (409). With STRIPE_API_KEY set,
// dev starts no emulator, removes the stale stripe-api.json and says which
// Stripe API the hub uses.
func TestDevStripeEmulatorKeepsStateAndYieldsToRealKeys(t *testing.T) {
	b := testkit.NATS(t)
	env := config.MapEnv(map[string]string{"NATS_URL": b.URL, "DATABASE_URL": testkit.Postgres(t), "LOG_LEVEL": "warn", "STRIPE_WEBHOOK_SECRET": devStripeTestSecret})
	data := filepath.Join(t.TempDir(), "hub")
	ports := freePorts(t, 11)

	h := startDevStripeHub(t, data, ports, env)
	first, err := readDevStripeEmulator(data)
	if err != nil {
		t.Fatal(err)
	}
	registered := bytes.ReplaceAll(testkit.StripeEvent(t, "customer.updated.email-set"), []byte("cus_OnMHOpJU2HN6Xv"), []byte("cus_DevRegistered01"))
	registered = bytes.Replace(registered, []byte("evt_1O5mztGgdF1VjufLj4K62fhg"), []byte("evt_1DevRegisteredGgdF1Vjuf"), 1)
	if status, body := registerEvent(t, first, registered); status != http.StatusOK {
		t.Fatalf("register an event: %d %s", status, body)
	}
	// What a kill -9 right after the answer would leave.
	crashed := t.TempDir()
	for _, name := range []string{"stripe.json", "stripe.json.journal"} {
		if b, err := os.ReadFile(filepath.Join(data, emulatorStateDir, name)); err == nil {
			if err := os.WriteFile(filepath.Join(crashed, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.stop()
	reloaded := stripeapi.New(stripeapi.Options{})
	kept, err := statefile.Open(filepath.Join(crashed, "stripe.json"), reloaded, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = kept.Close()
	if _, ok := reloaded.Object("customer", "cus_DevRegistered01"); !ok {
		t.Error("the state on disk when the registration was answered lacks its customer: the answer came before the save")
	}

	h = startDevStripeHub(t, data, ports, env)
	again, err := readDevStripeEmulator(data)
	if err != nil {
		t.Fatal(err)
	}
	if again.APIKey != first.APIKey {
		t.Errorf("after a restart the emulator's key is %q, want the saved %q", again.APIKey, first.APIKey)
	}
	for _, path := range []string{"/v1/customers/cus_DevRegistered01", "/v1/products/prod_OnMHDH6VBmYlTr", "/v1/charges/ch_1NzlYeGgdF1VjufLh34inorG"} {
		if status := stripeGet(t, again, path, again.APIKey); status != http.StatusOK {
			t.Errorf("after a restart GET %s answered %d", path, status)
		}
	}
	if status, body := registerEvent(t, again, registered); status != http.StatusOK {
		t.Errorf("the same event again after a restart: %d %s", status, body)
	}
	if status, body := registerEvent(t, again, bytes.Replace(registered, []byte("Jenny Rosen"), []byte("Jenny R."), 1)); status != http.StatusConflict {
		t.Errorf("other bytes under the registered id after a restart: %d %s, want 409", status, body)
	}

	// switchyard reconcile finds dev's emulator through --data: an event
	// Stripe "has" (registered, created now) that the hub never stored is
	// published.
	missed := bytes.Replace(registered, []byte("evt_1DevRegisteredGgdF1Vjuf"), []byte("evt_1DevReconciledGgdF1Vjuf"), 1)
	missed = bytes.Replace(missed, []byte(`"created": 1698249630`), []byte(`"created": `+strconv.FormatInt(time.Now().Unix()-60, 10)), 1)
	if status, body := registerEvent(t, again, missed); status != http.StatusOK {
		t.Fatalf("register the missed event: %d %s", status, body)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"reconcile", "--data-dir", data, "--since", "1h", "--json", "--nats", b.URL, "--webhook-url", "http://" + h.gateway + "/webhooks/stripe"},
		config.Overlay(env, map[string]string{"STRIPE_API_KEY": "", "STRIPE_API_BASE": ""}), nil, &out, &errOut); code != 0 {
		t.Fatalf("switchyard reconcile against dev: exit %d: %s %s", code, out.String(), errOut.String())
	}
	var rep struct {
		Listed    int `json:"listed"`
		Published int `json:"published"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Listed != 1 || rep.Published != 1 {
		t.Errorf("reconcile against dev's emulator: %s (%v), want the one recent event listed and published", out.String(), err)
	}
	_, js := b.Connect(t)
	stripeStream, err := js.Stream(context.Background(), natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the reconciled event in the STRIPE stream", func() bool {
		m, err := stripeStream.GetLastMsgForSubject(context.Background(), "stripe.events.customer.updated")
		return err == nil && m.Header.Get("Nats-Msg-Id") == "evt_1DevReconciledGgdF1Vjuf"
	})
	h.stop()

	// Real credentials: the hub uses them, and no emulator runs.
	real := stripeapi.New(stripeapi.Options{APIKeys: []string{"sk_test_realAccountKey0001"}})
	ts := httptest.NewServer(real)
	defer ts.Close()
	withKey := config.Overlay(env, map[string]string{"STRIPE_API_KEY": "sk_test_realAccountKey0001", "STRIPE_API_BASE": ts.URL})
	h = startDevStripeHub(t, data, ports, withKey)
	if h.emu != nil {
		t.Error("dev started the Stripe emulator although STRIPE_API_KEY is set")
	}
	if _, err := os.Stat(filepath.Join(data, devStripeEmulatorFile)); !os.IsNotExist(err) {
		t.Errorf("stripe-api.json left in place with real credentials (stat: %v)", err)
	}
	if !strings.Contains(h.stdout.String(), "Stripe API:      "+ts.URL+" (STRIPE_API_KEY)") {
		t.Errorf("the banner does not name the configured Stripe API:\n%s", h.stdout.String())
	}
	h.stop()
}
