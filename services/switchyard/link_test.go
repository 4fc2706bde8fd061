package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/devkit/emulator/stripeapi"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// stripeEventEdited is a fixture event with a new id, its data.object
// edited.
func stripeEventEdited(t *testing.T, fixture, id string, edit func(o map[string]any)) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(testkit.StripeEvent(t, fixture), &ev); err != nil {
		t.Fatal(err)
	}
	ev["id"] = id
	ev["created"] = time.Now().Unix()
	edit(ev["data"].(map[string]any)["object"].(map[string]any))
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestOperatorLinksAnUnlinkedPaymentThroughTheConsole is issue 13's
// "links to no one on its own … one audited operator action links it",
// through `switchyard dev` with a Stripe API: a guest payment's dispute,
// its payer having typed Ada's email, gets a record of its own. The status
// API and the console list it as unlinked with Ada as the candidate, a
// read-only token cannot link it, and the console's form (session, CSRF)
// links it: identity merges the record, the dispute shows on Ada's view,
// the unlinked list empties, and the audit log records who did it. The
// link is then repeated through the API, which answers already.
func TestOperatorLinksAnUnlinkedPaymentThroughTheConsole(t *testing.T) {
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	db := testkit.Postgres(t)
	emu := stripeapi.New(stripeapi.Options{APIKeys: []string{"rk_test_linktest"}})
	if err := emu.PutCharge(map[string]any{"id": "ch_LinkGuest1", "object": "charge", "customer": nil, "invoice": nil,
		"payment_intent": "pi_LinkGuest1", "billing_details": map[string]any{"email": "Ada@Example.com"},
		"amount": 4900, "currency": "usd", "livemode": false, "status": "succeeded"}); err != nil {
		t.Fatal(err)
	}
	stripeAPI := httptest.NewServer(emu)
	defer stripeAPI.Close()

	secret := "whsec_link" + randomHex(16)
	ports := freePorts(t, 11)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	gw, ops := "http://"+addr(0), "http://"+addr(9)
	const reader = "auditor:read:" + "0123456789abcdef0123456789abcdef"
	operator := "ops:read+operate:" + randomHex(24)
	env := config.MapEnv(map[string]string{
		"NATS_URL": b.URL, "DATABASE_URL": db, "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "error",
		"STRIPE_API_KEY": "rk_test_linktest", "STRIPE_API_BASE": stripeAPI.URL,
		"SWITCHYARD_OPS_TOKENS": operator + "," + reader, "ALERTS_DIGEST_AT": "off",
		// The console's login as the operator (this broker checks no
		// passwords; with NATS_URL dev takes it from the environment).
		"OPS_NATS_PASSWORD": "operator-test",
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
	defer func() {
		if t.Failed() {
			log := stderr.String()
			t.Logf("hub log (last 8000 bytes):\n%s", log[max(0, len(log)-8000):])
		}
	}()
	opsToken := strings.SplitN(operator, ":", 3)[2]
	readToken := strings.SplitN(reader, ":", 3)[2]
	testkit.WaitFor(t, 60*time.Second, "the dev hub's status API", func() bool {
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("dev exited with %d:\n%s", code, stderr.String())
		default:
		}
		return getJSON(ops+"/v1/status", opsToken, &map[string]any{}) == nil
	})

	const ada = "cus_LinkAda"
	for _, ev := range [][]byte{
		stripeEventEdited(t, "customer.created", "evt_linkAdaCreated1", func(o map[string]any) {
			o["id"], o["email"], o["name"] = ada, "ada@example.com", "Ada Lovelace"
		}),
		// A guest payment's dispute: the charge names no customer (Stripe says so).
		stripeEventEdited(t, "charge.dispute.created", "evt_linkGuestDispute1", func(o map[string]any) {
			o["id"], o["charge"], o["payment_intent"] = "dp_LinkGuest1", "ch_LinkGuest1", "pi_LinkGuest1"
		}),
	} {
		if status, answer := postSigned(t, gw+"/webhooks/stripe", secret, ev); status != http.StatusOK {
			t.Fatalf("gateway answered %d %s", status, answer)
		}
	}
	waitHubIdle(t, js, "Ada and the guest dispute")
	dlq, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, dlq); n != 0 {
		t.Fatalf("%d dead letters", n)
	}

	type unlinkedList struct {
		Unlinked []struct {
			ID               string   `json:"id"`
			UnverifiedEmails []string `json:"unverified_emails"`
			OpenDisputes     []string `json:"open_disputes"`
			Candidates       []struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			} `json:"candidates"`
		} `json:"unlinked"`
	}
	var list unlinkedList
	if err := getJSON(ops+"/v1/unlinked", readToken, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Unlinked) != 1 {
		t.Fatalf("unlinked: %+v, want the guest dispute's record", list)
	}
	guest := list.Unlinked[0]
	if !slices.Equal(guest.OpenDisputes, []string{"dp_LinkGuest1"}) || !slices.Equal(guest.UnverifiedEmails, []string{"ada@example.com"}) ||
		len(guest.Candidates) != 1 || guest.Candidates[0].Email != "ada@example.com" {
		t.Fatalf("unlinked record %+v: want the dispute, the typed email and Ada as its one candidate", guest)
	}
	adaID := guest.Candidates[0].ID
	var adaView struct {
		OpenDisputes []string `json:"open_disputes"`
		MergedIDs    []string `json:"merged_ids"`
	}
	if err := getJSON(ops+"/v1/customers/"+adaID, readToken, &adaView); err != nil || len(adaView.OpenDisputes) != 0 {
		t.Fatalf("Ada's view before the link: %+v %v, want no dispute: an email typed by a payer links no one", adaView, err)
	}

	// A read-only token cannot link.
	if code, body := postJSON(t, ops+"/v1/customers/"+guest.ID+"/link", readToken, `{"customer_id":"`+adaID+`"}`); code != http.StatusForbidden {
		t.Errorf("read token: %d %s, want 403", code, body)
	}

	// The console: log in, open Unlinked payments, press "Link to this customer".
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.PostForm(ops+"/login", url.Values{"token": {opsToken}, "next": {"/console/unlinked"}})
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="unlinked-`+guest.ID+`"`) || !strings.Contains(page, "ada@example.com") {
		t.Fatalf("console unlinked page: %d\n%s", resp.StatusCode, page)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no CSRF token on the page")
	}
	// Without the CSRF token nothing happens.
	resp, err = browser.PostForm(ops+"/console/unlinked/"+guest.ID+"/link", url.Values{"customer_id": {adaID}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden {
		t.Errorf("link without CSRF: %d %s, want 403", resp.StatusCode, body)
	}
	resp, err = browser.PostForm(ops+"/console/unlinked/"+guest.ID+"/link", url.Values{"csrf": {csrf[1]}, "customer_id": {adaID}})
	if err != nil {
		t.Fatal(err)
	}
	if page := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="linked"`) || !strings.Contains(page, adaID) {
		t.Fatalf("after linking: %d\n%s", resp.StatusCode, page)
	}

	// The merge comes back through billing.customer.upserted.
	waitHubIdle(t, js, "the link")
	if err := getJSON(ops+"/v1/customers/"+adaID, readToken, &adaView); err != nil || !slices.Equal(adaView.OpenDisputes, []string{"dp_LinkGuest1"}) ||
		!slices.Contains(adaView.MergedIDs, guest.ID) {
		t.Errorf("Ada's view after the link: %+v %v, want the dispute and the merged record", adaView, err)
	}
	list = unlinkedList{}
	if err := getJSON(ops+"/v1/unlinked", readToken, &list); err != nil || len(list.Unlinked) != 0 {
		t.Errorf("unlinked after the link: %+v %v, want none", list, err)
	}
	if code, body := postJSON(t, ops+"/v1/customers/"+guest.ID+"/link", opsToken, `{"customer_id":"`+adaID+`","note":"again"}`); code != http.StatusOK ||
		!strings.Contains(body, `"already":true`) {
		t.Errorf("repeated link: %d %s, want 200 already", code, body)
	}
	if code, body := postJSON(t, ops+"/v1/customers/"+adaID+"/link", opsToken, `{"customer_id":"`+guest.ID+`"}`); code != http.StatusConflict {
		t.Errorf("linking Ada (a Stripe customer) into another record: %d %s, want 409", code, body)
	}

	// The audit log: who linked what, with identity's answer.
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT actor || ' ' || action || ' ' || target || ' → ' || result FROM ops_audit WHERE action = 'link' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("ops link customer %s (link to %s) → linked to %s", guest.ID, adaID, adaID),
		fmt.Sprintf("ops link customer %s (link to %s) → linked to %s (already linked)", guest.ID, adaID, adaID),
		fmt.Sprintf("ops link customer %s (link to %s) → refused: the record has a Stripe customer, so it is not an unlinked payer's; two customers with Stripe customers are never merged", adaID, guest.ID),
	}
	if !slices.Equal(audit, want) {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(audit, "\n"), strings.Join(want, "\n"))
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func postJSON(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readBody(t, resp)
}
