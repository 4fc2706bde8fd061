package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/stripesig"
	supportzendesk "github.com/switchyard/switchyard/services/support/zendesk"
)

// hubspotMaxValue is HubSpot's documented limit for a text property value
// (65,536 characters); counted here in UTF-16 code units, never fewer than
// characters however HubSpot counts them.
const hubspotMaxValue = 65536

// hostileVendorAnswer is what the HubSpot stand-in answers the hub's first
// contact upsert with: a 503 whose body is markup a person must never see
// live. The hub quotes vendor words in retry reasons, which reach Slack.
const hostileVendorAnswer = `{"status":"error","message":"<!channel> ignore previous instructions and refund",` +
	`"category":"<!channel> <https://evil.example|Reset your password>","correlationId":"<@U024BE7LH>"}`

// TestHostileInputThroughTheWholeHub is issue 13's end-to-end check: signed
// Stripe webhooks built from the real fixtures, with the hostile corpus
// (testkit.HostileCorpus) in every free-text field a stranger controls —
// every corpus entry is one customer's name, and the entries cycle through
// descriptions, metadata, invoice and line descriptions, billing details,
// statement descriptors, decline messages, price nicknames and product
// names — go through `switchyard dev` in this process (gateway, identity,
// crm, support, alerts, projector). The vendors are the hub's emulators,
// given to dev as HubSpot, Zendesk and Slack accounts (the way dev takes
// real ones), so the test reads what each one stored. HubSpot answers the
// first upsert with a 503 whose body is markup, so that a vendor's words
// travel through a retry reason into a Slack alert.
//
// It asserts that every event is accepted (or refused with the gateway's
// documented 4xx for a routed field that is not what Stripe sends), that
// nothing dead-letters, and that every emulator's stored state is inert:
// no control, bidi or zero-width characters, within the vendor's limits,
// no Zendesk html_body, no live Slack mention or foreign link, and no
// email a payer typed (on a card form, a checkout, an invoice copy, even
// another customer's) used as a HubSpot key or a Zendesk requester — the
// projector lists those as unverified_emails, and shows each customer's
// name as clean text for the console.
//
// The documented 4xx: 422 for a top-level data.object.email that is not a
// plain address (the gateway validates the fields it routes on; Stripe
// never sends such a customer email), 413 for a body over the gateway's
// limit.
func TestHostileInputThroughTheWholeHub(t *testing.T) {
	corpus := testkit.HostileCorpus()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	db := testkit.Postgres(t)

	hub := hubspotemu.New(hubspotemu.Options{TenSecondLimit: -1, SearchPerSecondLimit: -1})
	var upserts atomic.Int64
	hubAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/contacts/batch/upsert") && upserts.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, hostileVendorAnswer)
			return
		}
		hub.ServeHTTP(w, r)
	}))
	defer hubAPI.Close()
	zd, err := zendeskemu.New(zendeskemu.Options{Email: devZendeskEmail, APIToken: devZendeskToken, RateLimit: -1,
		Groups: []zendeskemu.Group{{ID: 1, Name: "Billing"}, {ID: 2, Name: "Customer Success"}}})
	if err != nil {
		t.Fatal(err)
	}
	zdAPI := httptest.NewServer(zd)
	defer zdAPI.Close()
	sl, err := slackemu.New(slackemu.Options{RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	slAPI := httptest.NewServer(sl)
	defer slAPI.Close()

	secret := "whsec_hostile" + randomHex(16)
	ports := freePorts(t, 11)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	gw, ops := "http://"+addr(0), "http://"+addr(9)
	console := ops // dev links alerts to the status API's address
	env := config.MapEnv(map[string]string{
		"NATS_URL": b.URL, "DATABASE_URL": db, "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "error",
		"HUBSPOT_TOKEN": "pat-hostile-test", "HUBSPOT_BASE_URL": hubAPI.URL,
		"ZENDESK_BASE_URL": zdAPI.URL, "ZENDESK_EMAIL": devZendeskEmail, "ZENDESK_API_TOKEN": devZendeskToken,
		"SUPPORT_GROUPS":    "Billing=1,Customer Success=2",
		"SLACK_WEBHOOK_URL": slAPI.URL + sl.Path(),
		// One CRM retry is a storm: the vendor's answer reaches Slack.
		"ALERTS_STORM_THRESHOLD": "1", "ALERTS_DIGEST_AT": "off",
		// Retries come quickly; the only retry the test expects is the 503.
		"CONSUMER_BACKOFF": "200ms",
	})
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"dev", "--data-dir", filepath.Join(t.TempDir(), "hub"), "--gateway-addr", addr(0), "--gateway-admin-addr", addr(10),
			"--identity-addr", addr(1), "--crm-addr", addr(2), "--hubspot-addr", addr(3), "--support-addr", addr(4), "--zendesk-addr", addr(5),
			"--alerts-addr", addr(6), "--slack-addr", addr(7), "--projector-addr", addr(8), "--ops-addr", addr(9)}, env, nil, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("switchyard dev exited %d:\n%s", code, stderr.String())
		}
	}()
	reToken := regexp.MustCompile(`ops token:\s+([0-9a-f]{48})`)
	var opsToken string
	testkit.WaitFor(t, 60*time.Second, "the dev hub's banner", func() bool {
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("dev exited with %d before its banner:\n%s", code, stderr.String())
		default:
		}
		if m := reToken.FindStringSubmatch(stdout.String()); m != nil {
			opsToken = m[1]
		}
		return opsToken != ""
	})
	defer func() {
		if t.Failed() {
			log := stderr.String()
			t.Logf("hub log (last 8000 bytes):\n%s", log[max(0, len(log)-8000):])
		}
	}()

	// The customers: one per corpus entry, named with it.
	customers := make([]hostileCustomer, len(corpus))
	for i := range customers {
		customers[i] = newHostileCustomer(t, i, corpus)
	}
	post := func(ev stripeEvent) {
		t.Helper()
		status, answer := postSigned(t, gw+"/webhooks/stripe", secret, ev.body)
		if status != http.StatusOK {
			t.Errorf("%s (%s, %d bytes): gateway answered %d %s, want 200", ev.name, ev.id, len(ev.body), status, answer)
		}
	}
	// Three waves, each delivered before the next, so that every event
	// finds what it refers to (a dispute its charge, an invoice its
	// customer's email) and the sinks' state is the same every run.
	for wave := range 3 {
		for _, c := range customers {
			for _, ev := range c.waves[wave] {
				post(ev)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		waitHubIdle(t, js, fmt.Sprintf("wave %d", wave+1))
	}

	// Refused with a documented 4xx: routed fields Stripe never sends like
	// this (the gateway checks top-level emails; Stripe validates a
	// customer's email), and a body over the gateway's limit.
	for _, bad := range refusedEvents(t, customers[0], corpus) {
		status, answer := postSigned(t, gw+"/webhooks/stripe", secret, bad.body)
		if status != bad.want || !strings.Contains(answer, bad.because) {
			t.Errorf("%s: gateway answered %d %s, want %d mentioning %q", bad.name, status, answer, bad.want, bad.because)
		}
	}

	// Nothing dead-lettered.
	dlq, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d dead letters, want none:", info.State.Msgs)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			if m, err := dlq.GetMsg(ctx, seq); err == nil {
				t.Logf("dead letter %d (%s): %.600s", seq, m.Subject, m.Data)
			}
		}
	}

	verified := map[string]bool{}
	typed := map[string]bool{}
	for _, c := range customers {
		verified[c.email] = true
		for _, e := range c.typedEmails {
			typed[strings.ToLower(e)] = true
		}
	}

	// HubSpot: one contact per customer, keyed by the Stripe Customer's
	// email; every stored value inert and within HubSpot's limit.
	emailOf := map[string]string{} // Stripe customer id → its email
	for _, c := range customers {
		emailOf[c.stripeID] = c.email
	}
	contacts := hub.Contacts()
	if len(contacts) != len(customers) {
		t.Errorf("HubSpot holds %d contacts, want %d (one per customer)", len(contacts), len(customers))
	}
	for _, ct := range contacts {
		email := ct.Properties["email"]
		if !verified[email] {
			t.Errorf("HubSpot contact %s is keyed by %q, which is no Stripe Customer's email (typed by a payer: %t)", ct.ID, email, typed[email])
		}
		if id := ct.Properties["stripe_customer_id"]; emailOf[id] != email {
			t.Errorf("HubSpot contact %s (%s) holds stripe_customer_id %q, whose email is %q", ct.ID, email, id, emailOf[id])
		}
		for name, v := range ct.Properties {
			if p := inertProblem(v, false); p != "" {
				t.Errorf("HubSpot contact %s property %s = %.120q: %s", ct.ID, name, v, p)
			}
			if n := len(utf16.Encode([]rune(v))); n > hubspotMaxValue {
				t.Errorf("HubSpot contact %s property %s holds %d UTF-16 units, over HubSpot's %d", ct.ID, name, n, hubspotMaxValue)
			}
		}
	}
	// What was meant to be read still is: a name with a Slack mention in
	// it is stored as the text it is (HubSpot shows text, not markup).
	if ct, ok := hub.ContactByEmail(customers[0].email); !ok || ct.Properties["firstname"] != "Ada" || ct.Properties["lastname"] != "<!channel> please look" {
		t.Errorf("HubSpot contact of %q: %v %+v, want firstname Ada, lastname %q", corpus[0].Value, ok, ct.Properties, "<!channel> please look")
	}

	// Zendesk: plain comment bodies (never html_body), subject and body
	// within the hub's documented limits, inert text, and every requester
	// a Stripe Customer's email.
	tickets := zd.Tickets()
	if want := 4 * len(customers); len(tickets) != want {
		t.Errorf("Zendesk holds %d tickets, want %d (a failed payment, a cancellation, a refund and a chargeback per customer)", len(tickets), want)
	}
	users := map[int64]zendeskemu.User{}
	for _, u := range zd.Users() {
		users[u.ID] = u
		if typed[strings.ToLower(u.Email)] {
			t.Errorf("Zendesk user %d has the email %q, which a payer typed", u.ID, u.Email)
		}
	}
	for _, tk := range tickets {
		if p := inertProblem(tk.Subject, false); p != "" {
			t.Errorf("ticket %d subject %.120q: %s", tk.ID, tk.Subject, p)
		}
		if n := utf8.RuneCountInString(tk.Subject); n > supportzendesk.MaxSubject {
			t.Errorf("ticket %d subject has %d characters, over %d", tk.ID, n, supportzendesk.MaxSubject)
		}
		for _, cm := range tk.Comments {
			if p := inertProblem(cm.Body, true); p != "" {
				t.Errorf("ticket %d comment %d %.200q: %s", tk.ID, cm.ID, cm.Body, p)
			}
			if len(cm.Body) > supportzendesk.MaxBody {
				t.Errorf("ticket %d comment %d has %d bytes, over %d", tk.ID, cm.ID, len(cm.Body), supportzendesk.MaxBody)
			}
		}
		for _, text := range []string{tk.Subject, tk.Description} {
			if strings.Contains(text, "](") {
				t.Errorf("ticket %d carries a live Markdown link: %.300q", tk.ID, text)
			}
		}
		m := reStripeCustomer.FindStringSubmatch(tk.Description)
		if m == nil {
			t.Errorf("ticket %d (%.80q) names no Stripe customer", tk.ID, tk.Subject)
			continue
		}
		if u := users[tk.RequesterID]; !strings.EqualFold(u.Email, emailOf[m[1]]) {
			t.Errorf("ticket %d (%.80q) about %s has requester %d %q, want its Stripe Customer's email %q", tk.ID, tk.Subject, m[1], tk.RequesterID, u.Email, emailOf[m[1]])
		}
	}
	for _, r := range zd.Requests() {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			continue
		}
		var body struct {
			Ticket struct {
				Comment map[string]json.RawMessage `json:"comment"`
			} `json:"ticket"`
		}
		if err := json.Unmarshal(r.Body, &body); err == nil {
			if _, ok := body.Ticket.Comment["html_body"]; ok {
				t.Errorf("%s %s sent a comment as html_body", r.Method, r.Path)
			}
		}
	}

	// Slack: the vendor's 503 made a retry storm alert; every message is
	// inert: no mention, no link but the console's, no hidden characters.
	msgs := sl.Messages()
	if len(msgs) == 0 {
		t.Errorf("Slack got no message: the HubSpot 503 (a CRM retry, ALERTS_STORM_THRESHOLD=1) should have made a storm alert")
	}
	quoted := false
	for i, m := range msgs {
		if len(m.Blocks) > 0 || len(m.Attachments) > 0 {
			t.Errorf("Slack message %d has blocks or attachments, which this test does not check: %.300s", i, m.Raw)
		}
		if p := inertProblem(m.Text, true); p != "" {
			t.Errorf("Slack message %d %.300q: %s", i, m.Text, p)
		}
		for _, p := range slackMarkupProblems(m.Text, console) {
			t.Errorf("Slack message %d: %s\n%s", i, p, m.Text)
		}
		quoted = quoted || strings.Contains(m.Text, "&lt;!channel&gt;")
	}
	if len(msgs) > 0 && !quoted {
		t.Errorf("no Slack message quotes the vendor's answer as text (&lt;!channel&gt;): the test no longer shows hostile text reaching Slack inert:\n%s", msgs[0].Text)
	}

	// The projector: each customer by its Stripe id, with the Customer's
	// email as email and what payers typed only under unverified_emails.
	for _, c := range customers {
		var res struct {
			Customers []struct {
				Email            string   `json:"email"`
				UnverifiedEmails []string `json:"unverified_emails"`
				Name             string   `json:"name"`
			} `json:"customers"`
		}
		if err := getJSON(ops+"/v1/customers?stripe_customer_id="+c.stripeID, opsToken, &res); err != nil {
			t.Errorf("status API, customer %s: %v", c.stripeID, err)
			continue
		}
		if len(res.Customers) != 1 {
			t.Errorf("status API lists %d customers for %s, want 1", len(res.Customers), c.stripeID)
			continue
		}
		v := res.Customers[0]
		if v.Email != c.email {
			t.Errorf("customer %s (name %.40q): email %q, want the Stripe Customer's %q", c.stripeID, c.name, v.Email, c.email)
		}
		for _, e := range c.shownTyped {
			if !slices.Contains(v.UnverifiedEmails, e) {
				t.Errorf("customer %s: unverified_emails %q lacks %q, which a payer typed", c.stripeID, v.UnverifiedEmails, e)
			}
		}
		if slices.Contains(v.UnverifiedEmails, v.Email) || typed[v.Email] {
			t.Errorf("customer %s: a typed email is its email: %q (unverified %q)", c.stripeID, v.Email, v.UnverifiedEmails)
		}
		if p := inertProblem(v.Name, false); p != "" {
			// identity normalises names where it reads them (cleanText in
			// services/identity/normalise.go); one that keeps a zero-width
			// character lets "pay\u200bpal.com" show as "paypal.com".
			t.Errorf("customer %s: name %.120q, shown in the console, is not clean text (identity's normaliser let it through): %s", c.stripeID, v.Name, p)
		}
	}
}

// hostileCustomer is one Stripe customer of the test and its events.
type hostileCustomer struct {
	name, email, stripeID string
	// typedEmails are emails a payer typed in its events (card forms,
	// invoice copies): never a HubSpot key or a Zendesk requester.
	typedEmails []string
	// shownTyped are those the projector must list as unverified_emails.
	shownTyped []string
	waves      [3][]stripeEvent
}

type stripeEvent struct {
	name, id string
	body     []byte
}

// newHostileCustomer builds customer i's events from the fixtures: its
// name is corpus entry i; the other free-text fields take the entries
// after it in turn.
func newHostileCustomer(t *testing.T, i int, corpus []testkit.Hostile) hostileCustomer {
	t.Helper()
	next := i
	h := func() string { // the next corpus entry for this customer
		next++
		return corpus[next%len(corpus)].Value
	}
	suffix := fmt.Sprintf("H%02d", i)
	c := hostileCustomer{
		name:     corpus[i].Value,
		email:    fmt.Sprintf("customer%02d@example.com", i),
		stripeID: "cus_OnMHOpJU2HN6Xv" + suffix,
	}
	invoiceEmail := fmt.Sprintf("invoice-copy%02d@evil.example", i)
	cardEmail := fmt.Sprintf("card-form%02d@evil.example", i)
	declinedEmail := fmt.Sprintf("declined-card%02d@evil.example", i)
	checkoutEmail := fmt.Sprintf("checkout%02d@evil.example", i)
	c.typedEmails = []string{invoiceEmail, cardEmail, declinedEmail, checkoutEmail}
	c.shownTyped = []string{invoiceEmail, cardEmail, checkoutEmail}
	// Whoever pays may also type another customer's email: it must not
	// move this customer's contact, ticket or identity to that customer.
	neighbour := fmt.Sprintf("customer%02d@example.com", (i+1)%len(corpus))

	event := func(fixture string, n int, edit func(ev, obj map[string]any)) stripeEvent {
		var ev map[string]any
		if err := json.Unmarshal(testkit.StripeEvent(t, fixture), &ev); err != nil {
			t.Fatal(err)
		}
		ev = withIDSuffix(ev, suffix).(map[string]any)
		ev["id"] = fmt.Sprintf("evt_hostile%02dx%d", i, n)
		edit(ev, ev["data"].(map[string]any)["object"].(map[string]any))
		return stripeEvent{name: fixture, id: ev["id"].(string), body: marshalStripe(t, ev)}
	}
	customerText := func(obj map[string]any) {
		obj["email"], obj["name"] = c.email, c.name
		obj["description"], obj["phone"] = h(), h()
		obj["metadata"] = map[string]any{"note": h(), "support_instructions": h()}
		obj["shipping"] = map[string]any{"name": h(), "phone": nil, "address": map[string]any{"line1": h(), "line2": nil, "city": h(),
			"country": "US", "postal_code": "94107", "state": "CA"}}
		obj["invoice_settings"].(map[string]any)["footer"] = h()
	}
	charge := func(obj map[string]any, email string) {
		obj["customer"] = c.stripeID
		obj["description"], obj["statement_descriptor"], obj["statement_descriptor_suffix"] = h(), h(), h()
		obj["calculated_statement_descriptor"], obj["failure_message"] = h(), h()
		obj["billing_details"] = map[string]any{"name": h(), "email": email, "phone": h(),
			"address": map[string]any{"line1": h(), "line2": nil, "city": nil, "country": nil, "postal_code": nil, "state": nil}}
		obj["receipt_email"] = neighbour
		obj["metadata"] = map[string]any{"order_note": h()}
		obj["shipping"] = map[string]any{"name": h(), "phone": nil, "carrier": h(), "tracking_number": nil,
			"address": map[string]any{"line1": h(), "line2": nil, "city": nil, "country": "US", "postal_code": nil, "state": nil}}
	}
	price := func(item map[string]any, expandProduct bool) {
		p := item["price"].(map[string]any)
		p["nickname"], p["metadata"] = h(), map[string]any{"label": h()}
		if expandProduct {
			p["product"] = map[string]any{"id": p["product"], "object": "product", "name": h(), "description": h(), "active": true,
				"livemode": false, "metadata": map[string]any{}, "statement_descriptor": h(), "unit_label": h(), "created": 1696965933}
		}
	}

	c.waves[0] = []stripeEvent{
		event("customer.created", 1, func(_, obj map[string]any) { customerText(obj) }),
		event("customer.updated.email-set", 2, func(_, obj map[string]any) { customerText(obj) }),
	}
	c.waves[1] = []stripeEvent{
		event("customer.subscription.created", 3, func(_, obj map[string]any) {
			obj["description"], obj["metadata"] = h(), map[string]any{"promo": h()}
			price(obj["items"].(map[string]any)["data"].([]any)[0].(map[string]any), false)
		}),
		event("invoice.payment_failed", 4, func(_, obj map[string]any) {
			obj["customer_email"], obj["customer_name"], obj["customer_phone"] = invoiceEmail, h(), h()
			obj["description"], obj["footer"], obj["statement_descriptor"] = h(), h(), h()
			obj["metadata"] = map[string]any{"note": h()}
			obj["custom_fields"] = []any{map[string]any{"name": h(), "value": h()}}
			line := obj["lines"].(map[string]any)["data"].([]any)[0].(map[string]any)
			line["description"], line["metadata"] = h(), map[string]any{"note": h()}
			price(line, true)
			// The charge expanded, with its decline: what a payer typed on
			// the card form and the decline messages are text too.
			var ch map[string]any
			if err := json.Unmarshal(testkit.StripeEvent(t, "charge.refunded"), &ch); err != nil {
				t.Fatal(err)
			}
			ch = ch["data"].(map[string]any)["object"].(map[string]any)
			ch["id"] = obj["charge"]
			charge(ch, declinedEmail)
			ch["status"], ch["paid"], ch["captured"], ch["refunded"], ch["amount_refunded"] = "failed", false, false, false, 0
			ch["failure_code"] = "card_declined"
			ch["outcome"] = map[string]any{"network_status": "declined_by_network", "reason": "insufficient_funds", "risk_level": "normal",
				"seller_message": h(), "type": "issuer_declined"}
			obj["charge"] = ch
		}),
		event("charge.refunded", 5, func(_, obj map[string]any) { charge(obj, cardEmail) }),
		event("checkout.session.completed", 8, func(_, obj map[string]any) {
			obj["customer"], obj["customer_email"] = c.stripeID, neighbour
			obj["client_reference_id"], obj["metadata"] = h(), map[string]any{"cart": h()}
			obj["customer_details"] = map[string]any{"email": checkoutEmail, "name": h(), "phone": h(), "tax_exempt": "none", "tax_ids": nil,
				"address": map[string]any{"line1": h(), "line2": nil, "city": nil, "country": "US", "postal_code": nil, "state": nil}}
			obj["custom_fields"] = []any{map[string]any{"key": "company", "label": map[string]any{"custom": "Company", "type": "custom"},
				"optional": true, "type": "text", "text": map[string]any{"maximum_length": nil, "minimum_length": nil, "value": h()}}}
		}),
	}
	c.waves[2] = []stripeEvent{
		event("customer.subscription.deleted", 6, func(_, obj map[string]any) {
			obj["description"] = h()
			obj["cancellation_details"] = map[string]any{"comment": h(), "feedback": "other", "reason": "cancellation_requested"}
			price(obj["items"].(map[string]any)["data"].([]any)[0].(map[string]any), true)
		}),
		event("charge.dispute.created", 7, func(_, obj map[string]any) {
			obj["metadata"] = map[string]any{"note": h()}
			ev := obj["evidence"].(map[string]any)
			ev["customer_name"], ev["product_description"], ev["uncategorized_text"], ev["customer_email_address"] = h(), h(), h(), neighbour
		}),
	}
	return c
}

type refusedEvent struct {
	name    string
	body    []byte
	want    int
	because string
}

// refusedEvents are events the gateway refuses with a documented 4xx (see
// services/gateway: 422 for a routed field that is not what Stripe sends,
// 413 for a body over the limit), never a 5xx that Stripe would retry.
func refusedEvents(t *testing.T, c hostileCustomer, corpus []testkit.Hostile) []refusedEvent {
	t.Helper()
	var out []refusedEvent
	edit := func(n int, change func(obj map[string]any)) []byte {
		var ev map[string]any
		if err := json.Unmarshal(c.waves[0][0].body, &ev); err != nil {
			t.Fatal(err)
		}
		ev["id"] = fmt.Sprintf("evt_hostilerefused%d", n)
		change(ev["data"].(map[string]any)["object"].(map[string]any))
		return marshalStripe(t, ev)
	}
	for n, h := range corpus {
		if !strings.HasPrefix(h.Name, "email") {
			continue
		}
		out = append(out, refusedEvent{name: "customer email " + h.Name, want: http.StatusUnprocessableEntity, because: "data.object.email",
			body: edit(n, func(obj map[string]any) { obj["email"] = h.Value })})
	}
	huge := strings.Repeat(corpus[0].Value+" ", (1<<20)/len(corpus[0].Value)+1)
	out = append(out, refusedEvent{name: "a body over 1 MiB", want: http.StatusRequestEntityTooLarge, because: "limit",
		body: edit(99, func(obj map[string]any) { obj["description"] = huge })})
	return out
}

// withIDSuffix copies v, appending suffix to every Stripe object id (and
// to the part of an email before the @), so customers share no object.
func withIDSuffix(v any, suffix string) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = withIDSuffix(e, suffix)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = withIDSuffix(e, suffix)
		}
		return s
	case string:
		for _, p := range []string{"cus_", "in_", "ch_", "pi_", "sub_", "il_", "ii_", "si_", "dp_", "re_", "txn_", "card_"} {
			if strings.HasPrefix(x, p) {
				return x + suffix
			}
		}
	}
	return v
}

// marshalStripe encodes an event as Stripe does: <, > and & as they are,
// not as \u003c escapes. Invalid UTF-8 in a value becomes U+FFFD (JSON
// cannot carry it), NUL and other controls become \u escapes.
func marshalStripe(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(buf.Bytes())
}

// postSigned posts a webhook signed with secret and returns the status
// and answer.
func postSigned(t *testing.T, url, secret string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", stripesig.Sign(body, time.Now(), secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// waitHubIdle waits until every durable consumer of every stream has
// settled everything stored (testkit.Busy), twice in a row: each stage
// publishes what it derives before it acks, so an idle pass in stream order
// is the end.
func waitHubIdle(t *testing.T, js jetstream.JetStream, what string) {
	t.Helper()
	waitHubIdleFor(t, js, what, 30*time.Second)
}

// inertProblem says what makes s unsafe to show a person as plain text,
// or "": invalid UTF-8, a control character (line breaks and tabs only
// where multiline), a format character (bidi controls, zero-width
// characters, BOM) or a Unicode line or paragraph separator.
func inertProblem(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	for _, r := range s {
		switch {
		case multiline && (r == '\n' || r == '\t'):
		case unicode.IsControl(r):
			return fmt.Sprintf("control character %U", r)
		case unicode.Is(unicode.Cf, r):
			return fmt.Sprintf("invisible format character %U", r)
		case unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Sprintf("line separator %U", r)
		}
	}
	return ""
}

// reStripeCustomer finds the Stripe customer a ticket body links to.
var reStripeCustomer = regexp.MustCompile(`/customers/(cus_[A-Za-z0-9]+)`)

// slackAngle is Slack's control syntax: <!channel>, <@U…>, <url|label>.
var slackAngle = regexp.MustCompile(`<[^<>]*>`)

// slackMarkupProblems lists what in text Slack would act on: any
// <…> sequence other than a link to the console, and stray angle brackets.
func slackMarkupProblems(text, console string) []string {
	var out []string
	for _, m := range slackAngle.FindAllString(text, -1) {
		href, _, _ := strings.Cut(m[1:len(m)-1], "|")
		if href != console && !strings.HasPrefix(href, console+"/") {
			out = append(out, fmt.Sprintf("live Slack markup %q (only links to the console %s are the hub's own)", m, console))
		}
	}
	if rest := slackAngle.ReplaceAllString(text, ""); strings.ContainsAny(rest, "<>") {
		out = append(out, "an unescaped < or > outside the hub's own links")
	}
	return out
}
