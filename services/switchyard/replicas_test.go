package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	"github.com/switchyard/switchyard/platform/consumer"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/alerts"
	"github.com/switchyard/switchyard/services/crm"
	"github.com/switchyard/switchyard/services/identity"
	"github.com/switchyard/switchyard/services/projector"
	"github.com/switchyard/switchyard/services/support"
)

// Issue 14, point 2 (replicas): the numbers of TestHubWithTwoReplicasOfEveryConsumer.
const (
	replicaOrdinary = 100 // ordinary customers per burst (killBurst's lifecycle)
	replicaRefused  = 4   // customers per burst whose contact HubSpot refuses
	replicaCanceled = 4   // customers per burst whose cancellation ticket Zendesk refuses
)

// replicaServices are the consumer services, in the order of their ports.
var replicaServices = []string{"identity", "crm", "support", "alerts", "projector"}

// TestHubWithTwoReplicasOfEveryConsumer is issue 14's "every consumer
// service is correct with 2+ replicas": `switchyard dev` in this process
// runs the gateway and one replica of each consumer service (identity,
// crm, support, alerts, projector) against an external broker and
// database; the test starts a second replica of each in this process,
// with the service's own Run and the same environment, so both bind to
// the same durable consumers and share their messages, their done-effects
// ledgers, the alerts' folding and storm state, and the status API's
// login throttle.
//
// Two bursts go through the hub, each from 8 senders: 100 ordinary
// customers (customer.created, a failed payment, the paid invoice), 4
// customers whose email HubSpot refuses (a per-input 207 error, so each of
// their CRM syncs dead-letters) and 4 whose subscription is canceled with
// the cancellation rule's Zendesk group missing (a 422, so the critical
// ticket dead-letters). HubSpot answers the burst's first 3 requests with
// 503: a CRM retry storm. The second burst posts the first again (Stripe's
// retries), and a third of the way in the second replica of every service
// is stopped; the first finishes the work.
//
// Between the bursts, both replicas' status APIs show the same views, and
// a guesser's 10 wrong tokens, alternating between them, use up the
// throttle of both (the 11th is refused with 429 by either).
//
// It asserts exactly once: STRIPE holds every event once; each dead letter
// is the one expected (crm for a refused email, support for a
// cancellation) and no message is dead-lettered twice; each customer has
// one view in the status API with its failed payment and its ticket (and
// a canceled customer's failed ticket) once in the timeline; HubSpot one
// contact per accepted customer and none for a refused one; Zendesk one
// ticket per failed payment; Slack one alert per dead letter (each
// critical one on its own, the others on their own or counted in a later
// alert's "+N more" or a folded summary), and storm alerts at most one a
// minute. And that the test proves something: the second replica of every
// service handled messages.
func TestHubWithTwoReplicasOfEveryConsumer(t *testing.T) {
	start := time.Now()
	b := testkit.NATS(t)
	_, js := b.Connect(t)
	db := testkit.Postgres(t)

	// HubSpot refuses any contact whose email names a refused customer,
	// with the per-input error of its batch upsert (207), as it does for a
	// property value it will not store.
	hub := hubspotemu.New(hubspotemu.Options{TenSecondLimit: -1, SearchPerSecondLimit: -1})
	hubAPI := httptest.NewServer(refusingHubSpot(t, hub, func(email string) bool { return strings.Contains(email, "+r") }))
	defer hubAPI.Close()
	// No group 2: the cancellation rule's group ("Customer Success") is
	// configured with an id Zendesk does not have.
	zd, err := zendeskemu.New(zendeskemu.Options{Email: devZendeskEmail, APIToken: devZendeskToken, RateLimit: -1,
		Groups: []zendeskemu.Group{{ID: 1, Name: "Billing"}}})
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

	secret := "whsec_replicas" + randomHex(16)
	ports := freePorts(t, 11+len(replicaServices)+1)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	gw, ops := "http://"+addr(0), "http://"+addr(9)
	operator := "ops:read+operate:" + randomHex(24)
	opsToken := strings.SplitN(operator, ":", 3)[2]
	base := map[string]string{
		"NATS_URL": b.URL, "DATABASE_URL": db, "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "error",
		"HUBSPOT_TOKEN": "pat-replicas-test", "HUBSPOT_BASE_URL": hubAPI.URL,
		"ZENDESK_BASE_URL": zdAPI.URL, "ZENDESK_EMAIL": devZendeskEmail, "ZENDESK_API_TOKEN": devZendeskToken,
		"SUPPORT_GROUPS":    "Billing=1,Customer Success=2",
		"SLACK_WEBHOOK_URL": slAPI.URL + sl.Path(),
		// Every CRM retry counts toward a storm; folded dead letters are
		// summed up a second after their kind's last alert.
		"ALERTS_STORM_THRESHOLD": "1", "ALERTS_WINDOW": "1s", "ALERTS_DIGEST_AT": "off",
		"CONSUMER_BACKOFF":      "200ms",
		"SWITCHYARD_OPS_TOKENS": operator,
		// The projector's operator login (this broker checks no passwords).
		"OPS_NATS_PASSWORD": "operator-test",
	}
	data := filepath.Join(t.TempDir(), "hub")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"dev", "--data-dir", data, "--gateway-addr", addr(0), "--gateway-admin-addr", addr(10),
			"--identity-addr", addr(1), "--crm-addr", addr(2), "--hubspot-addr", addr(3), "--support-addr", addr(4), "--zendesk-addr", addr(5),
			"--alerts-addr", addr(6), "--slack-addr", addr(7), "--projector-addr", addr(8), "--ops-addr", addr(9)}, config.MapEnv(base), nil, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("switchyard dev exited %d:\n%s", code, logTail(stderr.String(), 60))
		}
	}()
	var replicaLog lockedBuffer
	defer func() {
		if t.Failed() {
			t.Logf("hub log:\n%s", logTail(stderr.String(), 60))
			t.Logf("second replicas' log:\n%s", logTail(replicaLog.String(), 60))
		}
	}()
	testkit.WaitFor(t, 60*time.Second, "the dev hub's banner", func() bool {
		select {
		case code := <-exited:
			exited <- code
			t.Fatalf("dev exited with %d before its banner:\n%s", code, stderr.String())
		default:
		}
		return strings.Contains(stdout.String(), "Switchyard dev hub is running.")
	})
	first := map[string]string{"identity": addr(1), "crm": addr(2), "support": addr(4), "alerts": addr(6), "projector": addr(8)}

	// The second replicas: the environment dev gives its services, with
	// admin listeners (and a status API) of their own.
	replay, err := devReplayKeys(config.MapEnv(nil), data)
	if err != nil {
		t.Fatal(err)
	}
	second := map[string]string{}
	over := map[string]string{
		"SWITCHYARD_ENV":      "development",
		"GATEWAY_METRICS_URL": "http://" + addr(10) + "/metrics",
		"SWITCHYARD_OPS_URL":  ops, "SWITCHYARD_CONSOLE_URL": ops,
		"OPS_ADDR": addr(11 + len(replicaServices)),
	}
	for i, svc := range replicaServices {
		second[svc] = addr(11 + i)
		over[strings.ToUpper(svc)+"_ADDR"] = second[svc]
	}
	env := config.Overlay(config.Overlay(config.MapEnv(base), over), replay.everyone)
	runs := map[string]func(context.Context, func(string) string, io.Writer) error{
		"identity": identity.Run, "crm": crm.Run, "support": support.Run, "alerts": alerts.Run,
		"projector": func(ctx context.Context, getenv func(string) string, w io.Writer) error {
			return projector.Run(ctx, config.Overlay(getenv, replay.signer), w)
		},
	}
	rctx, stopReplicas := context.WithCancel(context.Background())
	defer stopReplicas()
	var replicas sync.WaitGroup
	replicaErrs := make(chan error, len(replicaServices))
	for _, svc := range replicaServices {
		replicas.Add(1)
		go func() {
			defer replicas.Done()
			if err := runs[svc](rctx, env, &replicaLog); err != nil {
				replicaErrs <- fmt.Errorf("second %s replica: %w", svc, err)
			}
		}()
	}
	for _, svc := range replicaServices {
		if err := waitReady(context.Background(), "http://"+second[svc]+"/readyz", 30*time.Second); err != nil {
			t.Fatalf("second %s replica: %v\n%s", svc, err, logTail(replicaLog.String(), 40))
		}
	}
	opsSecond := "http://" + over["OPS_ADDR"]
	t.Logf("hub and second replicas up after %s", time.Since(start).Round(time.Millisecond))

	// The customers of both bursts.
	ordinary, ordinaryIDs := killBurst(t, 2*replicaOrdinary)
	refused1, refusedIDs1 := replicaLifecycles(t, "r1", replicaRefused, false)
	refused2, refusedIDs2 := replicaLifecycles(t, "r2", replicaRefused, false)
	canceled1, canceledIDs1 := replicaLifecycles(t, "x1", replicaCanceled, true)
	canceled2, canceledIDs2 := replicaLifecycles(t, "x2", replicaCanceled, true)
	first1 := slices.Concat(ordinary[:3*replicaOrdinary], refused1, canceled1)
	burst2 := slices.Concat(ordinary[3*replicaOrdinary:], refused2, canceled2, first1)
	refusedIDs := slices.Concat(refusedIDs1, refusedIDs2)
	canceledIDs := slices.Concat(canceledIDs1, canceledIDs2)
	allIDs := slices.Concat(ordinaryIDs, refusedIDs, canceledIDs)
	distinct := len(ordinary) + len(refused1) + len(refused2) + len(canceled1) + len(canceled2)

	post := poster(gw+"/webhooks/stripe", secret)
	var failed atomic.Int64
	send := func(body []byte) {
		if err := post(body); err != nil && failed.Add(1) == 1 {
			t.Errorf("a webhook failed: %v", err)
		}
	}
	hub.FailNext(3, http.StatusServiceUnavailable) // a CRM retry storm
	burst(first1, send)
	if t.Failed() {
		t.FailNow()
	}
	waitHubIdle(t, js, "the first burst")
	t.Logf("first burst (%d webhooks) done after %s", len(first1), time.Since(start).Round(time.Millisecond))
	secondAfterFirst := replicaCounts(t, second)
	for _, svc := range replicaServices {
		if secondAfterFirst[svc] == 0 {
			t.Errorf("the second %s replica handled no message in the first burst: the test proves nothing about replicas", svc)
		}
	}

	// Both replicas' status APIs show the same customers.
	type view struct {
		ID  string `json:"id"`
		CRM struct {
			Status string `json:"status"`
		} `json:"crm"`
		States []string `json:"states"`
	}
	for _, id := range []string{ordinaryIDs[0], ordinaryIDs[replicaOrdinary-1], refusedIDs1[0], canceledIDs1[0]} {
		var a, b struct {
			Customers []view `json:"customers"`
		}
		errA := getJSON(ops+"/v1/customers?stripe_customer_id="+id, opsToken, &a)
		errB := getJSON(opsSecond+"/v1/customers?stripe_customer_id="+id, opsToken, &b)
		if errA != nil || errB != nil || len(a.Customers) != 1 || !reflect.DeepEqual(a, b) {
			t.Errorf("customer %s: the first replica's status API shows %+v (%v), the second's %+v (%v); want one view, the same", id, a, errA, b, errB)
		}
	}

	// The status API's login throttle is the replicas' together: a
	// guesser's failures alternate between them, and the limit (10 a
	// minute) holds for both as if they were one. The guesser comes from
	// another loopback address, so the test's own client is not throttled.
	guesser := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	guess := func(api string) int {
		req, err := http.NewRequest(http.MethodGet, api+"/v1/customers?stripe_customer_id="+ordinaryIDs[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("9", len(opsToken)))
		resp, err := guesser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 10 {
		if code := guess([]string{ops, opsSecond}[i%2]); code != http.StatusUnauthorized {
			t.Errorf("wrong token, attempt %d: %d, want 401", i+1, code)
		}
	}
	for _, api := range []string{ops, opsSecond} {
		if code := guess(api); code != http.StatusTooManyRequests {
			t.Errorf("%s: the 11th wrong token in a minute across both replicas answered %d, want 429", api, code)
		}
	}

	// The second burst; a third of the way in, the second replicas stop.
	var sent atomic.Int64
	var secondAtStop map[string]int64
	var once sync.Once
	burst(burst2, func(body []byte) {
		send(body)
		if sent.Add(1) == int64(len(burst2)/3) {
			once.Do(func() {
				secondAtStop = replicaCounts(t, second)
				stopReplicas()
				done := make(chan struct{})
				go func() { replicas.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(30 * time.Second):
					t.Errorf("the second replicas did not stop within 30s")
				}
			})
		}
	})
	close(replicaErrs)
	for err := range replicaErrs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Convergence: every accepted customer synced with its ticket open,
	// every refused one's CRM sync failed.
	wantCRM := map[string]string{}
	for _, id := range allIDs {
		wantCRM[id] = "synced"
	}
	for _, id := range refusedIDs {
		wantCRM[id] = "failed"
	}
	converged := func(id string, vs []view) bool {
		return len(vs) == 1 && vs[0].CRM.Status == wantCRM[id] && slices.Contains(vs[0].States, "support ticket opened")
	}
	views := map[string][]view{}
	var behind string
	defer func() {
		if t.Failed() {
			t.Logf("the last customer not converged: %s", behind)
		}
	}()
	testkit.WaitFor(t, 40*time.Second, "every customer's CRM sync settled with its ticket open", func() bool {
		for _, id := range allIDs {
			if converged(id, views[id]) {
				continue
			}
			var res struct {
				Customers []view `json:"customers"`
			}
			if err := getJSON(ops+"/v1/customers?stripe_customer_id="+id, opsToken, &res); err != nil {
				behind = id + ": " + err.Error()
				return false
			}
			views[id] = res.Customers
			if !converged(id, res.Customers) {
				behind = fmt.Sprintf("%s: %+v", id, res.Customers)
				return false
			}
		}
		return true
	})
	waitHubIdle(t, js, "the second burst")
	t.Logf("second burst (%d webhooks) done after %s", len(burst2), time.Since(start).Round(time.Millisecond))

	// The event log: every event once.
	stripe, err := js.Stream(context.Background(), natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, stripe); n != uint64(distinct) {
		t.Errorf("STRIPE holds %d messages, want %d", n, distinct)
	}

	// The dead letters: crm's for refused emails, support's for the
	// cancellations, none twice, none of anyone else.
	refusedSet, canceledSet := setOf(refusedIDs), setOf(canceledIDs)
	dls := deadLetters(t, js)
	dlConsumer := map[uint64]string{}
	perMessage := map[string]int{}
	crmDLs, supportDLs := 0, 0
	crmDLsOf := map[string]int{}
	supportDLsOf := map[string]int{}
	for _, dl := range dls {
		dlConsumer[dl.Sequence] = dl.Consumer
		perMessage[dl.Consumer+" "+dl.OriginalMsgID]++
		who := stripeCustomerOf(dl)
		switch {
		case dl.Consumer == crm.ConsumerName && refusedSet[who]:
			crmDLs++
			crmDLsOf[who]++
		case dl.Consumer == support.ConsumerName && canceledSet[who] && dl.OriginalSubject == subjects.BillingSubscriptionCanceled:
			supportDLs++
			supportDLsOf[who]++
		default:
			t.Errorf("unexpected dead letter %d: %s of %s (%s, customer %q): %s", dl.Sequence, dl.Consumer, dl.OriginalSubject, dl.Class, who, dl.Reason)
		}
	}
	for k, n := range perMessage {
		if n != 1 {
			t.Errorf("%s dead-lettered %d times, want once", k, n)
		}
	}
	for _, id := range refusedIDs {
		if crmDLsOf[id] == 0 {
			t.Errorf("refused customer %s: no crm dead letter", id)
		}
	}
	for _, id := range canceledIDs {
		if supportDLsOf[id] != 1 {
			t.Errorf("canceled customer %s: %d support dead letters, want 1 (its cancellation ticket)", id, supportDLsOf[id])
		}
	}

	// The status API, from both replicas: one view per customer, its
	// failed payment and its ticket once in the timeline.
	for _, id := range allIDs {
		v := views[id]
		if len(v) != 1 {
			continue // reported by the convergence wait
		}
		var page struct {
			Entries []struct {
				Subject string `json:"subject"`
			} `json:"entries"`
		}
		if err := getJSON(ops+"/v1/customers/"+v[0].ID+"/timeline", opsToken, &page); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range page.Entries {
			seen[e.Subject]++
		}
		want := map[string]int{subjects.BillingPaymentFailed: 1, subjects.SupportTicketOpened: 1, subjects.SupportTicketFailed: 0}
		if canceledSet[id] {
			want[subjects.SupportTicketFailed] = 1
		}
		for s, n := range want {
			if seen[s] != n {
				t.Errorf("customer %s: timeline holds %s %d times, want %d: %v", id, s, seen[s], n, seen)
			}
		}
	}
	if err := getJSON(opsSecond+"/v1/status", opsToken, &map[string]any{}); err == nil {
		t.Errorf("the stopped replica's status API still answers")
	}

	// HubSpot: one contact per accepted customer, none for a refused one.
	contacts := map[string]int{}
	for _, c := range hub.Contacts() {
		contacts[c.Properties["stripe_customer_id"]]++
	}
	for _, id := range allIDs {
		want := 1
		if refusedSet[id] {
			want = 0
		}
		if contacts[id] != want {
			t.Errorf("HubSpot holds %d contacts for customer %s, want %d", contacts[id], id, want)
		}
	}
	if want := len(allIDs) - len(refusedIDs); len(hub.Contacts()) != want {
		t.Errorf("HubSpot holds %d contacts, want %d", len(hub.Contacts()), want)
	}

	// Zendesk: one ticket per failed payment (every customer has one),
	// none twice.
	tickets, byExternal := map[string]int{}, map[string]int{}
	for _, tk := range zd.Tickets() {
		byExternal[tk.ExternalID]++
		if m := reStripeCustomer.FindStringSubmatch(tk.Description); m != nil {
			tickets[m[1]]++
		} else {
			t.Errorf("ticket %d (%.80q) names no Stripe customer", tk.ID, tk.Subject)
		}
	}
	for ext, n := range byExternal {
		if n != 1 {
			t.Errorf("Zendesk holds %d tickets with external_id %s, want 1", n, ext)
		}
	}
	for _, id := range allIDs {
		if tickets[id] != 1 {
			t.Errorf("Zendesk holds %d tickets for customer %s, want 1", tickets[id], id)
		}
	}
	if len(zd.Tickets()) != len(allIDs) {
		t.Errorf("Zendesk holds %d tickets, want %d", len(zd.Tickets()), len(allIDs))
	}

	// Slack: every dead letter alerted once, the critical ones on their
	// own; storm alerts at most one a minute. Folded counts come in a
	// summary a window after their kind's last alert.
	var tally slackTally
	testkit.WaitFor(t, 20*time.Second, "every dead letter alerted", func() bool {
		tally = tallySlack(sl.Messages(), dlConsumer)
		return tally.crm >= crmDLs && tally.support >= supportDLs
	})
	if tally.crm != crmDLs || tally.support != supportDLs || tally.criticalFolded != 0 {
		t.Errorf("Slack alerts: %+v; want crm %d, support %d (each critical on its own)", tally, crmDLs, supportDLs)
	}
	for _, p := range tally.problems {
		t.Error(p)
	}
	if len(tally.storms) == 0 {
		t.Errorf("no CRM retry storm alert: HubSpot's 503s (ALERTS_STORM_THRESHOLD=1) should have made one")
	}
	for i := 1; i < len(tally.storms); i++ {
		if d := tally.storms[i].Sub(tally.storms[i-1]); d < time.Minute {
			t.Errorf("two CRM retry storm alerts %s apart, want at most one a minute across replicas", d)
		}
	}

	// What each replica handled (messages settled: acked or dead-lettered).
	firstCounts := replicaCounts(t, first)
	var line []string
	for _, svc := range replicaServices {
		line = append(line, fmt.Sprintf("%s %d/%d (after burst 1: %d)", svc, firstCounts[svc], secondAtStop[svc], secondAfterFirst[svc]))
	}
	t.Logf("messages handled, first/second replica (the second counted when stopped): %s", strings.Join(line, ", "))
	t.Logf("dead letters: crm %d, support %d; Slack: %d alerts (%d crm alone, %d folded into others, %d in summaries; %d critical), %d storm alert(s); took %s",
		crmDLs, supportDLs, len(sl.Messages()), tally.crmAlone, tally.crmFolded, tally.crmSummed, tally.support, len(tally.storms), time.Since(start).Round(time.Millisecond))
}

// replicaLifecycles returns n customers' Stripe events in Stripe's order —
// customer.created with an email, a failed payment, the paid invoice and,
// when canceled, the subscription's deletion — every Stripe id and email
// suffixed with tag and the customer's number, and the customers' ids.
func replicaLifecycles(t *testing.T, tag string, n int, canceled bool) (events [][]byte, ids []string) {
	t.Helper()
	names := []string{"customer.created", "invoice.payment_failed", "invoice.paid"}
	if canceled {
		names = append(names, "customer.subscription.deleted")
	}
	templates := make([]map[string]any, len(names))
	for i, name := range names {
		if err := json.Unmarshal(testkit.StripeEvent(t, name), &templates[i]); err != nil {
			t.Fatal(err)
		}
	}
	obj := templates[0]["data"].(map[string]any)["object"].(map[string]any)
	obj["email"] = "jenny.rosen@example.com"
	for i := range n {
		suffix := fmt.Sprintf("%s%04d", tag, i)
		for k, tpl := range templates {
			ev := rewrite(tpl, suffix).(map[string]any)
			ev["id"] = fmt.Sprintf("evt_repl%d%s", k, suffix)
			body, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, body)
		}
		ids = append(ids, rewrite(obj["id"], suffix).(string))
	}
	return events, ids
}

// refusingHubSpot is hub behind HubSpot's per-input refusal: a batch
// upsert's inputs whose email refuse says so get a VALIDATION_ERROR in the
// 207's errors (and are not stored); the rest go to hub as they came.
func refusingHubSpot(t *testing.T, hub http.Handler, refuse func(email string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/contacts/batch/upsert") {
			hub.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var in struct {
			Inputs []json.RawMessage `json:"inputs"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			hub.ServeHTTP(w, r)
			return
		}
		var keep []json.RawMessage
		var refused []string
		for _, raw := range in.Inputs {
			var one struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(raw, &one) == nil && refuse(one.ID) {
				refused = append(refused, one.ID)
				continue
			}
			keep = append(keep, raw)
		}
		if len(refused) == 0 {
			r.Body = io.NopCloser(bytes.NewReader(body))
			hub.ServeHTTP(w, r)
			return
		}
		answer := map[string]any{"status": "COMPLETE", "results": []any{}}
		status := http.StatusMultiStatus
		if len(keep) > 0 {
			fwd, err := json.Marshal(map[string]any{"inputs": keep})
			if err != nil {
				t.Error(err)
			}
			r2 := r.Clone(r.Context())
			r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(fwd)), int64(len(fwd))
			rec := httptest.NewRecorder()
			hub.ServeHTTP(rec, r2)
			if rec.Code != http.StatusOK && rec.Code != http.StatusMultiStatus {
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			answer = map[string]any{}
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Errorf("HubSpot emulator's batch answer: %v", err)
			}
		}
		errs, _ := answer["errors"].([]any)
		for _, id := range refused {
			errs = append(errs, map[string]any{"status": "error", "category": "VALIDATION_ERROR",
				"message": "Property values were not valid", "context": map[string][]string{"ids": {id}},
				"errors": []map[string]string{{"message": "The contact cannot be stored", "code": "INVALID_OPTION"}}})
		}
		answer["errors"], answer["numErrors"] = errs, len(errs)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(answer)
	})
}

// deadLetters reads every dead letter in the DLQ stream.
func deadLetters(t *testing.T, js jetstream.JetStream) []*consumer.DeadLetter {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*consumer.DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		dl, err := consumer.DecodeDeadLetterMsg(m.Header, m.Data)
		if err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		dl.Sequence = seq
		out = append(out, dl)
	}
	return out
}

// stripeCustomerOf is the Stripe customer of a dead letter's billing event.
func stripeCustomerOf(dl *consumer.DeadLetter) string {
	msg, err := subjects.Decode(dl.OriginalSubject, dl.OriginalData)
	if err != nil {
		return ""
	}
	be, ok := msg.(subjects.BillingEvent)
	if !ok {
		return ""
	}
	return be.GetMeta().GetStripeCustomerId()
}

func setOf(ids []string) map[string]bool {
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// slackTally counts the dead letters Slack's messages account for, by
// consumer: each alert for one (named by its DLQ sequence), each "+N more"
// folded into it and each summary of N folded ones.
type slackTally struct {
	crm, support                   int
	crmAlone, crmFolded, crmSummed int
	criticalFolded                 int
	storms                         []time.Time
	problems                       []string
}

var (
	reAlertSeq     = regexp.MustCompile("switchyard dlq replay ([0-9]+)`")
	reAlertFolded  = regexp.MustCompile(`\(\+([0-9]+) more like this since the last alert`)
	reAlertSummary = regexp.MustCompile("^:warning: ([0-9]+) more dead letter\\(s\\) in `([^`]+)`")
)

func tallySlack(msgs []slackemu.Message, consumerOf map[uint64]string) slackTally {
	var out slackTally
	alerted := map[uint64]int{}
	add := func(consumerName string, n int) {
		switch consumerName {
		case crm.ConsumerName:
			out.crm += n
		case support.ConsumerName:
			out.support += n
		default:
			out.problems = append(out.problems, fmt.Sprintf("Slack counts %d dead letter(s) of %q, which has none", n, consumerName))
		}
	}
	for _, m := range msgs {
		switch {
		case strings.HasPrefix(m.Text, ":cyclone: CRM retry storm"):
			out.storms = append(out.storms, m.Time)
		case reAlertSummary.MatchString(m.Text):
			sm := reAlertSummary.FindStringSubmatch(m.Text)
			n, _ := strconv.Atoi(sm[1])
			add(sm[2], n)
			if sm[2] == crm.ConsumerName {
				out.crmSummed += n
			}
		case reAlertSeq.MatchString(m.Text):
			seq, _ := strconv.ParseUint(reAlertSeq.FindStringSubmatch(m.Text)[1], 10, 64)
			alerted[seq]++
			c, ok := consumerOf[seq]
			if !ok {
				out.problems = append(out.problems, fmt.Sprintf("Slack alert for dead letter %d, which is not in the DLQ: %s", seq, m.Text))
				continue
			}
			add(c, 1)
			folded := 0
			if fm := reAlertFolded.FindStringSubmatch(m.Text); fm != nil {
				folded, _ = strconv.Atoi(fm[1])
				add(c, folded)
			}
			if c == crm.ConsumerName {
				out.crmAlone++
				out.crmFolded += folded
			} else {
				out.criticalFolded += folded
				if !strings.Contains(m.Text, "*CRITICAL*") {
					out.problems = append(out.problems, fmt.Sprintf("the alert for support's dead letter %d is not critical: %s", seq, m.Text))
				}
			}
		default:
			out.problems = append(out.problems, "unexpected Slack message: "+m.Text)
		}
	}
	for seq, n := range alerted {
		if n != 1 {
			out.problems = append(out.problems, fmt.Sprintf("dead letter %d alerted %d times, want once", seq, n))
		}
	}
	return out
}

// replicaCounts is, per service, the messages one replica's consumers
// settled (acked or dead-lettered), from its /metrics at addrs[service].
func replicaCounts(t *testing.T, addrs map[string]string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for svc, addr := range addrs {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Errorf("%s metrics: %v", svc, err)
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			m := reProcessed.FindStringSubmatch(sc.Text())
			if m == nil || !(strings.Contains(m[1], `result="ack"`) || strings.Contains(m[1], `result="dead_letter"`)) {
				continue
			}
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Errorf("%s metrics: %q: %v", svc, sc.Text(), err)
			}
			out[svc] += int64(v)
		}
		resp.Body.Close()
	}
	return out
}

var reProcessed = regexp.MustCompile(`^switchyard_consumer_processed_total\{([^}]*)\} (\S+)$`)
