package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/wire"
	"github.com/switchyard/switchyard/services/gateway"
)

// TestFreshEventRenewsEveryIDCoherently: for every fixture, trigger's event
// has a new evt_ id and new object ids, the same old id becoming the same
// new one everywhere (so the invoice's customer is the customer's id), the
// account kept, created now, livemode false; the overrides land in
// data.object.
func TestFreshEventRenewsEveryIDCoherently(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_900_000_000, 0)
	anyID := regexp.MustCompile(`\b(?:cus|sub|in|ch|pi|re|dp|prod|price|evt|il|ii|si|txn|req)_[A-Za-z0-9]{10,}\b`)
	for _, name := range testkit.StripeEventNames(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tmpl := testkit.StripeEvent(t, name)
			ev, err := freshEvent(tmpl, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			old := anyID.FindAllString(string(tmpl), -1)
			if len(old) == 0 || len(ev.ids) == 0 {
				t.Fatalf("no ids found in the template (%d) or replaced (%d)", len(old), len(ev.ids))
			}
			body := string(ev.body)
			for _, id := range old {
				if strings.Contains(body, id) {
					t.Errorf("old id %s is still in the event", id)
				}
				n, ok := ev.ids[id]
				if !ok || len(n) != len(id) || n[:strings.LastIndexByte(n, '_')] != id[:strings.LastIndexByte(id, '_')] {
					t.Errorf("old id %s: new %q, want one of the same prefix and length", id, n)
				}
				if c := strings.Count(string(tmpl), id); strings.Count(body, n) != c {
					t.Errorf("%s appeared %d times, its new id %s %d times", id, c, n, strings.Count(body, n))
				}
			}
			// Email addresses are renewed alike: a triggered event is a new
			// customer's story, not one more customer under the fixture's email.
			for _, addr := range reEmail.FindAllString(string(tmpl), -1) {
				n := ev.ids[addr]
				local, domain, _ := strings.Cut(addr, "@")
				if strings.Contains(body, `"`+addr+`"`) || !strings.HasPrefix(n, local+"+") || !strings.HasSuffix(n, "@"+domain) {
					t.Errorf("email %s: new %q, want %s+…@%s everywhere", addr, n, local, domain)
				}
				if c := strings.Count(string(tmpl), `"`+addr+`"`); strings.Count(body, `"`+n+`"`) != c {
					t.Errorf("%s appeared %d times, its new address %s %d times", addr, c, n, strings.Count(body, `"`+n+`"`))
				}
			}
			var got struct {
				ID       string `json:"id"`
				Created  int64  `json:"created"`
				Livemode bool   `json:"livemode"`
				Data     struct {
					Object map[string]any `json:"object"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ev.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.ID != ev.id || !strings.HasPrefix(got.ID, "evt_") || got.Created != now.Unix() || got.Livemode || strings.Contains(body, `"livemode": true`) {
				t.Errorf("event id %q (reported %q), created %d, livemode %t; want a new evt_, %d, false everywhere", got.ID, ev.id, got.Created, got.Livemode, now.Unix())
			}
			if acct := regexp.MustCompile(`acct_[A-Za-z0-9]+`).FindString(string(tmpl)); acct != "" && !strings.Contains(body, acct) {
				t.Errorf("the account %s was renewed: it is the same account", acct)
			}
		})
	}

	// An invoice's references stay coherent with its customer and charge.
	ev, err := freshEvent(testkit.StripeEvent(t, "invoice.paid"), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	var inv struct {
		Data struct {
			Object struct {
				ID       string `json:"id"`
				Customer string `json:"customer"`
				Charge   string `json:"charge"`
				Lines    struct {
					URL string `json:"url"`
				} `json:"lines"`
			} `json:"object"`
		} `json:"data"`
	}
	mustJSON(t, json.Unmarshal(ev.body, &inv))
	o := inv.Data.Object
	if o.Customer != ev.ids["cus_OnMHOpJU2HN6Xv"] || o.Charge != ev.ids["ch_3O5H0NGgdF1VjufL4E5nFQRj"] || o.Lines.URL != "/v1/invoices/"+o.ID+"/lines" || o.ID != ev.objectID {
		t.Errorf("invoice %s: customer %s, charge %s, lines %s; want the renewed ids throughout (%v)", o.ID, o.Customer, o.Charge, o.Lines.URL, ev.ids)
	}

	// Overrides: JSON values, strings, a new leaf under an existing object,
	// a list index; a missing parent is refused.
	ov, err := parseOverrides([]string{"email=new@example.com", "metadata.plan=pro", "balance=42", `name="007"`, "invoice_settings.custom_fields=null"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err = freshEvent(testkit.StripeEvent(t, "customer.updated"), ov, now)
	if err != nil {
		t.Fatal(err)
	}
	var cus struct {
		Data struct {
			Object map[string]any `json:"object"`
		} `json:"data"`
	}
	mustJSON(t, json.Unmarshal(ev.body, &cus))
	c := cus.Data.Object
	if c["email"] != "new@example.com" || c["metadata"].(map[string]any)["plan"] != "pro" || c["metadata"].(map[string]any)["foo"] != "bar" ||
		c["balance"] != float64(42) || c["name"] != "007" || c["invoice_settings"].(map[string]any)["custom_fields"] != nil {
		t.Errorf("overrides not applied as asked: %v", c)
	}
	ov, _ = parseOverrides([]string{"items.data.0.price.nickname=Pro plan"})
	ev, err = freshEvent(testkit.StripeEvent(t, "customer.subscription.updated"), ov, now)
	if err != nil || !strings.Contains(string(ev.body), `"nickname": "Pro plan"`) {
		t.Errorf("list index override: %v", err)
	}
	for _, bad := range []string{"no_such.field=1", "items.data.9.price=1", "email.local=x"} {
		ov, _ := parseOverrides([]string{bad})
		if _, err := freshEvent(testkit.StripeEvent(t, "customer.subscription.updated"), ov, now); err == nil {
			t.Errorf("--override %s: accepted, want refused", bad)
		}
	}
}

// emulatorWithRegistry serves the Stripe API emulator, whose
// POST /_emulator/events trigger registers events with, taking key.
func emulatorWithRegistry(t *testing.T, key string) (*stripeapi.Server, *httptest.Server) {
	t.Helper()
	api := stripeapi.New(stripeapi.Options{APIKeys: []string{key}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return api, srv
}

// startGateway runs the real gateway on b and returns its webhook URL and
// signing secret.
func startGateway(t *testing.T, b *testkit.Broker) (hook, secret string) {
	t.Helper()
	ports := freePorts(t, 2)
	secret = "whsec_" + randomHex(16)
	env := config.MapEnv(map[string]string{
		"NATS_URL": b.URL, "STRIPE_WEBHOOK_SECRET": secret, "SWITCHYARD_ENV": gateway.EnvDevelopment, "LOG_LEVEL": "warn",
		"GATEWAY_ADDR": "127.0.0.1:" + strconv.Itoa(ports[0]), "GATEWAY_ADMIN_ADDR": "127.0.0.1:" + strconv.Itoa(ports[1]),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.Run(ctx, env, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	if err := waitReady(ctx, "http://127.0.0.1:"+strconv.Itoa(ports[1])+"/readyz", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return "http://127.0.0.1:" + strconv.Itoa(ports[0]) + "/webhooks/stripe", secret
}

// storedEvents are the STRIPE stream's messages by event id.
func storedEvents(t *testing.T, js jetstream.JetStream) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for seq := uint64(1); seq <= streamMsgs(t, s); seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out[m.Header.Get(wire.HeaderMsgID)] = m.Data
	}
	return out
}

// TestTriggerRegistersThenDelivers: trigger registers its fresh event with
// the dev hub's Stripe API emulator (found through stripe-api.json), so the
// customer it carries can be retrieved there, then the real gateway stores
// exactly that event; without an emulator it still delivers, saying why it
// registered nothing; an emulator that refuses stops it before delivery.
func TestTriggerRegistersThenDelivers(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	hook, secret := startGateway(t, b)
	const key = "sk_test_trigger_emulator"
	api, emu := emulatorWithRegistry(t, key)
	dataDir := t.TempDir()
	info, _ := json.Marshal(map[string]string{"url": emu.URL, "api_key": key})
	if err := os.WriteFile(filepath.Join(dataDir, devStripeEmulatorFile), info, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"STRIPE_WEBHOOK_SECRET": secret, "SWITCHYARD_WEBHOOK_URL": hook}

	out, errOut, code := runCLI(t, env, "trigger", "customer.updated", "--data-dir", dataDir, "--json",
		"--override", "email=ada@example.com", "--override", "metadata.plan=pro")
	var rep triggered
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("trigger: exit %d\n%s%s", code, out, errOut)
	}
	if !rep.Registered || rep.StripeAPI != emu.URL || rep.Delivery.Status != http.StatusOK || rep.Type != "customer.updated" || !strings.HasPrefix(rep.ObjectID, "cus_") {
		t.Errorf("report %+v: want registered at %s and delivered 200", rep, emu.URL)
	}
	stored := storedEvents(t, js)[rep.EventID]
	if stored == nil {
		t.Fatalf("the STRIPE stream has no message %s", rep.EventID)
	}
	var ev struct {
		Data struct {
			Object struct {
				ID       string            `json:"id"`
				Email    string            `json:"email"`
				Metadata map[string]string `json:"metadata"`
			} `json:"object"`
		} `json:"data"`
	}
	mustJSON(t, json.Unmarshal(stored, &ev))
	if ev.Data.Object.ID != rep.ObjectID || ev.Data.Object.Email != "ada@example.com" || ev.Data.Object.Metadata["plan"] != "pro" {
		t.Errorf("stored event's customer %+v, want %s with the overrides", ev.Data.Object, rep.ObjectID)
	}
	// What the hub would refetch: the customer, as the event carried it.
	req, _ := http.NewRequest(http.MethodGet, emu.URL+"/v1/customers/"+rep.ObjectID, nil)
	req.SetBasicAuth(key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"email": "ada@example.com"`) {
		t.Errorf("emulator GET customer %s: %d %s", rep.ObjectID, resp.StatusCode, body)
	}
	if evs := api.Events(); len(evs) != 1 || evs[0].ID != rep.EventID {
		t.Errorf("emulator events %+v, want only %s", evs, rep.EventID)
	}

	// A second trigger is a different event with different objects.
	out, _, code = runCLI(t, env, "trigger", "customer.updated", "--data-dir", dataDir, "--json")
	var again triggered
	if code != exitOK || json.Unmarshal([]byte(out), &again) != nil || again.EventID == rep.EventID || again.ObjectID == rep.ObjectID {
		t.Errorf("second trigger: exit %d, %s / %s after %s / %s", code, again.EventID, again.ObjectID, rep.EventID, rep.ObjectID)
	}

	// No emulator: delivered, with a note on why nothing was registered.
	out, errOut, code = runCLI(t, env, "trigger", "invoice.paid", "--data-dir", t.TempDir())
	if code != exitOK || !strings.Contains(errOut, "note: no Stripe API emulator") || !strings.Contains(out, "Triggered invoice.paid evt_") || !strings.Contains(out, " 200 ") {
		t.Errorf("trigger without an emulator: exit %d\n%s%s", code, out, errOut)
	}

	// An emulator that refuses the key: nothing is delivered.
	before := len(storedEvents(t, js))
	refused := map[string]string{"STRIPE_WEBHOOK_SECRET": secret, "SWITCHYARD_WEBHOOK_URL": hook, "STRIPE_API_BASE": emu.URL, "STRIPE_API_KEY": "sk_test_wrong"}
	_, errOut, code = runCLI(t, refused, "trigger", "charge.refunded", "--json")
	if c, msg := jsonError(t, errOut); code != exitFailure || c != codeUnauthorized || !strings.Contains(msg, "Invalid API Key") {
		t.Errorf("refused registration: exit %d, %s %q; want 1, unauthorized, Stripe's message", code, c, msg)
	}
	if after := len(storedEvents(t, js)); after != before {
		t.Errorf("the STRIPE stream went from %d to %d messages after a refused registration", before, after)
	}
}

// TestResendDeliversTheEventStripeHas: resend fetches the event from the
// Stripe API and the real gateway stores it byte for byte; a second resend
// is the gateway's duplicate, said so and stored once; an id Stripe does
// not know is not_found.
func TestResendDeliversTheEventStripeHas(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	hook, secret := startGateway(t, b)
	const key = "sk_test_resend"
	api, emu := emulatorWithRegistry(t, key)
	fixture := testkit.StripeEvent(t, "customer.created")
	// Within Stripe's 30 days of retrieval: the same event, created now.
	ev, err := freshEvent(fixture, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := api.AddEvent(ev.body, true); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"STRIPE_WEBHOOK_SECRET": secret, "SWITCHYARD_WEBHOOK_URL": hook, "STRIPE_API_BASE": emu.URL, "STRIPE_API_KEY": key}

	out, errOut, code := runCLI(t, env, "resend", ev.id, "--json")
	var rep resent
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Duplicate || rep.Delivery.Status != http.StatusOK || rep.Type != "customer.created" {
		t.Fatalf("resend: exit %d, %+v\n%s%s", code, rep, out, errOut)
	}
	stored := storedEvents(t, js)
	if len(stored) != 1 || stored[ev.id] == nil {
		t.Fatalf("the STRIPE stream holds %d messages, want exactly %s", len(stored), ev.id)
	}
	req, _ := http.NewRequest(http.MethodGet, emu.URL+"/v1/events/"+ev.id, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(stored[ev.id]) != string(served) {
		t.Errorf("stored %.200s…, want the bytes the Stripe API serves: %.200s…", stored[ev.id], served)
	}

	out, errOut, code = runCLI(t, env, "resend", ev.id)
	if code != exitOK || !strings.Contains(out, "duplicate: the gateway already stored "+ev.id) {
		t.Errorf("second resend: exit %d, want the duplicate explained\n%s%s", code, out, errOut)
	}
	if n := len(storedEvents(t, js)); n != 1 {
		t.Errorf("the STRIPE stream holds %d messages after a duplicate resend, want 1", n)
	}

	_, errOut, code = runCLI(t, env, "resend", "evt_NoSuchEvent000000000000", "--json")
	if c, msg := jsonError(t, errOut); code != exitFailure || c != codeNotFound || !strings.Contains(msg, "No such event") {
		t.Errorf("unknown event: exit %d, %s %q; want 1, not_found and Stripe's message", code, c, msg)
	}

	// The dev hub's emulator, found through stripe-api.json, serves too.
	dataDir := t.TempDir()
	info, _ := json.Marshal(map[string]string{"url": emu.URL, "api_key": key})
	if err := os.WriteFile(filepath.Join(dataDir, devStripeEmulatorFile), info, 0o600); err != nil {
		t.Fatal(err)
	}
	devEnv := map[string]string{"STRIPE_WEBHOOK_SECRET": secret, "SWITCHYARD_WEBHOOK_URL": hook}
	if out, errOut, code := runCLI(t, devEnv, "resend", "--data-dir", dataDir, ev.id); code != exitOK || !strings.Contains(out, "from the Stripe API at "+emu.URL) {
		t.Errorf("resend through stripe-api.json: exit %d\n%s%s", code, out, errOut)
	}
}

// TestTriggerRegistersWhatTheEventNames: a triggered dispute names a
// charge, and the charge may name a customer and a payment intent; the
// emulator must hold fresh copies of each (as Stripe would for a dispute that
// happened), under the new ids the event carries, and no fixture id may
// leak into what is registered. Without them identity's refetch of the
// dispute's charge finds nothing and the event dead-letters in `make run`.
func TestTriggerRegistersWhatTheEventNames(t *testing.T) {
	b := testkit.NATS(t)
	hook, secret := startGateway(t, b)
	const key = "sk_test_trigger_related"
	api, emu := emulatorWithRegistry(t, key)
	env := map[string]string{"STRIPE_WEBHOOK_SECRET": secret, "SWITCHYARD_WEBHOOK_URL": hook,
		"STRIPE_API_BASE": emu.URL, "STRIPE_API_KEY": key}

	out, errOut, code := runCLI(t, env, "trigger", "charge.dispute.created", "--json")
	var rep triggered
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || !rep.Registered {
		t.Fatalf("trigger: exit %d\n%s%s", code, out, errOut)
	}
	tmpl := testkit.StripeEvent(t, "charge.dispute.created")
	var dispute struct {
		Data struct {
			Object struct{ Charge, PaymentIntent string } `json:"object"`
		} `json:"data"`
	}
	mustJSON(t, json.Unmarshal(tmpl, &dispute))
	var charge struct{ Customer, PaymentIntent string }
	want := map[string]string{"charge": dispute.Data.Object.Charge}
	newCharge, ok := rep.IDs[want["charge"]]
	if !ok {
		t.Fatalf("the dispute's charge %s was not renewed: ids %v", want["charge"], rep.IDs)
	}
	raw, ok := api.Object("charge", newCharge)
	if !ok {
		t.Fatalf("the emulator holds no charge %s (the dispute's, renewed)", newCharge)
	}
	mustJSON(t, json.Unmarshal(raw, &charge))
	if _, ok := api.Object("customer", charge.Customer); charge.Customer != "" && !ok {
		t.Errorf("the emulator holds no customer %s (the charge's)", charge.Customer)
	}
	if _, ok := api.Object("payment_intent", charge.PaymentIntent); charge.PaymentIntent != "" && !ok {
		t.Errorf("the emulator holds no payment intent %s (the charge's)", charge.PaymentIntent)
	}
	if rep.Related < 1 {
		t.Errorf("registered %d related objects, want at least the charge", rep.Related)
	}
	for _, kind := range []string{"customer", "charge", "payment_intent", "invoice", "subscription", "product"} {
		for id, obj := range api.Objects(kind) {
			for old := range rep.IDs {
				if strings.Contains(string(obj), old) {
					t.Errorf("registered %s %s still names the fixture's %s", kind, id, old)
				}
			}
		}
	}
}
