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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/config"
	hubspotemu "github.com/switchyard/switchyard/platform/devkit/emulator/hubspot"
	slackemu "github.com/switchyard/switchyard/platform/devkit/emulator/slack"
	zendeskemu "github.com/switchyard/switchyard/platform/devkit/emulator/zendesk"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/stripesig"
)

// Issue 14, point 4 (cluster): the numbers of TestClusterLeaderFailover.
const (
	clusterCustomers = 500 // two webhooks each: 1,000
	clusterKillAfter = 300 // webhooks answered 200 before the STRIPE leader is killed
	clusterRate      = 100 // customers started a second (200 webhooks/s)
	clusterWorkers   = 16
)

// TestClusterLeaderFailover is issue 14's cluster fault: `switchyard dev`
// in this process against a 3-node JetStream cluster (R3 streams, every
// client given all three URLs), fed 1,000 signed webhooks — a
// customer.created with an email and an invoice.payment_failed for each of
// 500 customers — at a steady rate; after 300 are stored the node leading
// the STRIPE stream is shut down. Webhooks keep coming; one answered
// anything but 200 is posted again after a short delay, as Stripe retries
// (each customer's second event only once its first was stored, as a
// retry of the first would otherwise race it). It asserts that nothing is
// lost and nothing is done twice: the STRIPE stream holds exactly the
// 1,000 events, HubSpot one contact per customer, Zendesk one ticket per
// failed payment, and nothing is dead-lettered. It logs the gateway's 503
// window and the failover time on one line:
//
//	cluster failover: leader killed after N webhooks; 503 window X ms (K non-200 answers); new leader after Y ms; slowest 200 Z ms
func TestClusterLeaderFailover(t *testing.T) {
	cluster := testkit.NATSCluster(t, 3)
	_, js := cluster.Connect(t)
	db := testkit.Postgres(t)

	hub := hubspotemu.New(hubspotemu.Options{TenSecondLimit: -1, SearchPerSecondLimit: -1})
	hubAPI := httptest.NewServer(hub)
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

	secret := "whsec_cluster" + randomHex(16)
	ports := freePorts(t, 11)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	env := config.MapEnv(map[string]string{
		"NATS_URL": cluster.URL, "NATS_STREAM_REPLICAS": "3",
		"DATABASE_URL": db, "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "error",
		"HUBSPOT_TOKEN": "pat-cluster-test", "HUBSPOT_BASE_URL": hubAPI.URL,
		"ZENDESK_BASE_URL": zdAPI.URL, "ZENDESK_EMAIL": devZendeskEmail, "ZENDESK_API_TOKEN": devZendeskToken,
		"SUPPORT_GROUPS":    "Billing=1,Customer Success=2",
		"SLACK_WEBHOOK_URL": slAPI.URL + sl.Path(), "ALERTS_DIGEST_AT": "off",
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
	defer func() {
		if t.Failed() {
			log := stderr.String()
			t.Logf("hub log (last 8000 bytes):\n%s", log[max(0, len(log)-8000):])
		}
	}()
	for _, i := range []int{10, 1, 2, 4, 6, 8} { // the gateway's readiness is on its admin listener
		if err := waitReady(ctx, "http://"+addr(i)+"/readyz", 90*time.Second); err != nil {
			select {
			case code := <-exited:
				exited <- code
				t.Fatalf("dev exited with %d before it was ready:\n%s", code, stderr.String())
			default:
			}
			t.Fatal(err)
		}
	}

	customers := clusterLifecycles(t, clusterCustomers)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clusterWorkers}}
	var (
		stored   atomic.Int64 // webhooks answered 200
		mu       sync.Mutex
		firstBad time.Time // the first and last answers other than 200
		lastBad  time.Time
		bad      int
		slowest  time.Duration                // the longest a webhook waited for its 200
		killed   = make(chan [2]time.Time, 1) // the kill, the new leader
	)
	deliver := func(body []byte) {
		for {
			start := time.Now()
			status, err := postClusterWebhook(client, "http://"+addr(0)+"/webhooks/stripe", secret, body)
			if err != nil {
				t.Errorf("post: %v", err) // the gateway itself never goes away
				return
			}
			now := time.Now()
			mu.Lock()
			if status == http.StatusOK {
				slowest = max(slowest, now.Sub(start))
			} else {
				if firstBad.IsZero() {
					firstBad = now
				}
				lastBad, bad = now, bad+1
			}
			mu.Unlock()
			if status == http.StatusOK {
				if stored.Add(1) == clusterKillAfter {
					leader := cluster.StreamLeader(natsbus.StreamStripe)
					if leader < 0 {
						t.Errorf("no STRIPE leader to kill")
						return
					}
					t.Logf("killing %s, the STRIPE stream's leader", cluster.Nodes[leader].Name)
					go func() {
						// The failover time: from the kill until another
						// node leads STRIPE.
						at := time.Now()
						cluster.Shutdown(leader)
						for l := cluster.StreamLeader(natsbus.StreamStripe); l < 0 || l == leader; l = cluster.StreamLeader(natsbus.StreamStripe) {
							time.Sleep(time.Millisecond)
						}
						killed <- [2]time.Time{at, time.Now()}
					}()
				}
				return
			}
			if status != http.StatusServiceUnavailable {
				t.Errorf("gateway answered %d, want 200 or 503", status)
			}
			time.Sleep(100 * time.Millisecond) // Stripe waits longer; the test need not
		}
	}

	// Customers start at a steady rate, each on its own schedule; a worker
	// delivers a customer's two events in order.
	work := make(chan [2][]byte)
	var wg sync.WaitGroup
	for range clusterWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				deliver(c[0])
				deliver(c[1])
			}
		}()
	}
	begin := time.Now()
	for i, c := range customers {
		time.Sleep(time.Until(begin.Add(time.Duration(i) * time.Second / clusterRate)))
		work <- c
	}
	close(work)

	wg.Wait()
	var killedAt time.Time
	var failover time.Duration
	select {
	case k := <-killed:
		killedAt, failover = k[0], k[1].Sub(k[0])
	case <-time.After(30 * time.Second):
		t.Fatalf("no new STRIPE leader within 30s of the kill (%d webhooks stored)", stored.Load())
	}
	if t.Failed() {
		t.FailNow()
	}
	posted := time.Since(begin)

	// The 503 window is from the first answer other than 200 to the last;
	// a webhook in flight at the kill is answered 503 only when
	// GATEWAY_PUBLISH_TIMEOUT runs out, so the window also says when.
	var window, from, to time.Duration
	if bad > 0 {
		window, from, to = lastBad.Sub(firstBad), firstBad.Sub(killedAt), lastBad.Sub(killedAt)
	}
	t.Logf("cluster failover: leader killed after %d webhooks; 503 window %d ms (%d non-200 answers, %d to %d ms after the kill); new leader after %d ms; slowest 200 %d ms; %d webhooks posted in %v",
		clusterKillAfter, window.Milliseconds(), bad, from.Milliseconds(), to.Milliseconds(), failover.Milliseconds(), slowest.Milliseconds(), 2*len(customers), posted.Round(time.Millisecond))

	waitHubIdleFor(t, js, "1,000 webhooks across the failover", 90*time.Second)

	// Nothing lost: every event stored once.
	stripe, err := js.Stream(ctx, natsbus.StreamStripe)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stripe.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(2 * len(customers)); info.State.Msgs != want {
		t.Errorf("STRIPE holds %d events, want %d", info.State.Msgs, want)
	}
	dlq, err := js.Stream(ctx, natsbus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := dlq.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("DLQ: %+v (%v), want no dead letters", info.State, err)
	}

	// No effect twice: one contact per customer, one ticket per failed payment.
	contacts := map[string]int{}
	for _, ct := range hub.Contacts() {
		contacts[ct.Properties["stripe_customer_id"]]++
	}
	tickets := map[string]int{}
	for _, tk := range zd.Tickets() {
		if m := reStripeCustomer.FindStringSubmatch(tk.Description); m != nil {
			tickets[m[1]]++
		} else {
			t.Errorf("ticket %d (%.80q) names no Stripe customer", tk.ID, tk.Subject)
		}
	}
	if len(hub.Contacts()) != len(customers) || len(zd.Tickets()) != len(customers) {
		t.Errorf("HubSpot holds %d contacts, Zendesk %d tickets; want %d each", len(hub.Contacts()), len(zd.Tickets()), len(customers))
	}
	for i := range customers {
		id := clusterCustomerID(i)
		if contacts[id] != 1 || tickets[id] != 1 {
			t.Errorf("customer %s: %d HubSpot contacts, %d Zendesk tickets; want 1 each", id, contacts[id], tickets[id])
		}
	}
}

// waitHubIdleFor is waitHubIdle with its own deadline, longer after a
// failover, while the consumers find their new leaders (an error reading a
// stream or consumer then counts as busy, not as a failure).
func waitHubIdleFor(t *testing.T, js jetstream.JetStream, what string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	idleRuns := 0
	var busy []string
	defer func() {
		if t.Failed() {
			t.Logf("consumers still busy after %s: %s", what, strings.Join(busy, ", "))
		}
	}()
	testkit.WaitFor(t, timeout, "every consumer idle after "+what, func() bool {
		var err error
		if busy, err = testkit.Busy(ctx, js); err != nil {
			busy = []string{err.Error()} // a stream or consumer between leaders
		}
		if len(busy) > 0 {
			idleRuns = 0
			return false
		}
		idleRuns++
		return idleRuns >= 2
	})
}

// reClusterCustomer is the fixture customer id the lifecycles rewrite.
var reClusterCustomer = regexp.MustCompile(`^cus_[A-Za-z0-9]+$`)

// clusterCustomerID is the Stripe id of the i-th customer of clusterLifecycles.
func clusterCustomerID(i int) string { return clusterFixtureCustomer + fmt.Sprintf("c%05d", i) }

// clusterFixtureCustomer is the customer of the fixtures clusterLifecycles
// rewrites (read from customer.created).
var clusterFixtureCustomer string

// clusterLifecycles returns n customers' customer.created (with an email)
// and invoice.payment_failed, every Stripe id and email suffixed with the
// customer's number so that no two share anything.
func clusterLifecycles(t *testing.T, n int) [][2][]byte {
	t.Helper()
	var tpl [2]map[string]any
	for i, name := range []string{"customer.created", "invoice.payment_failed"} {
		if err := json.Unmarshal(testkit.StripeEvent(t, name), &tpl[i]); err != nil {
			t.Fatal(err)
		}
	}
	obj := tpl[0]["data"].(map[string]any)["object"].(map[string]any)
	obj["email"] = "jenny.rosen@example.com"
	clusterFixtureCustomer, _ = obj["id"].(string)
	if !reClusterCustomer.MatchString(clusterFixtureCustomer) {
		t.Fatalf("customer.created fixture has customer id %q", clusterFixtureCustomer)
	}
	out := make([][2][]byte, n)
	for i := range n {
		suffix := fmt.Sprintf("c%05d", i)
		for k := range tpl {
			ev := rewrite(tpl[k], suffix).(map[string]any)
			ev["id"] = fmt.Sprintf("evt_cluster%d%s", k, suffix)
			body, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			out[i][k] = body
		}
	}
	return out
}

// postClusterWebhook signs and posts one webhook and returns the status.
func postClusterWebhook(client *http.Client, url, secret string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", stripesig.Sign(body, time.Now(), secret))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
