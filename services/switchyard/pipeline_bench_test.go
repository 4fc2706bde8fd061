package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/platform/stripesig"
	"github.com/switchyard/switchyard/services/projector"
)

// BenchmarkPipeline drives the whole hub — `switchyard dev` in this
// process: gateway, identity, crm (HubSpot emulator), support (Zendesk
// emulator), alerts and projector on embedded NATS and PostgreSQL — with
// signed Stripe webhooks over HTTP, three per customer (customer.created
// with an email → a CRM contact; a failed payment → a Zendesk ticket; the
// retry paying), and reports two figures:
//
//   - sustained: BENCH_PIPELINE_EVENTS (default 3,000) events posted by 32
//     clients as fast as the gateway takes them; events/s = events / time
//     until every consumer of every stream is idle (identity, crm, support,
//     projector and the rest have handled everything).
//   - latency: each of BENCH_PIPELINE_RATES events/s (default "400 1000")
//     offered for BENCH_PIPELINE_SECONDS (default 5) on fresh customers;
//     for about 100 Stripe events a second, the time from the webhook's POST
//     to the projection holding it (the projector's event_sources, polled
//     every 10 ms), p50/p99/max. Above the sustained rate the backlog, and so the
//     latency, grows for as long as the run lasts.
//
// The vendor emulators apply no rate limits (BENCH_PIPELINE_VENDOR_LIMITS=plan
// applies the smallest plans' documented ones: see --vendor-limits).
//
// Generator, hub, broker and database share the machine's cores.
func BenchmarkPipeline(b *testing.B) {
	events := envInt(b, "BENCH_PIPELINE_EVENTS", 3000)
	var rates []int
	for _, f := range strings.Fields(orDefault(os.Getenv("BENCH_PIPELINE_RATES"), "400 1000")) {
		r, err := strconv.Atoi(f)
		if err != nil || r <= 0 {
			b.Fatalf("BENCH_PIPELINE_RATES=%q: want positive integers", os.Getenv("BENCH_PIPELINE_RATES"))
		}
		rates = append(rates, r)
	}
	seconds := envInt(b, "BENCH_PIPELINE_SECONDS", 5)
	// The hub's own capacity by default; with plan, what the vendors'
	// smallest plans allow (Zendesk: 200 requests a minute, HubSpot: 100
	// per 10 s).
	limits := os.Getenv("BENCH_PIPELINE_VENDOR_LIMITS")
	if limits == "" {
		limits = "none"
	}
	broker := testkit.NATS(b)
	dbURL := testkit.Postgres(b)
	secret := "whsec_bench" + randomHex(16)
	ports := freePorts(b, 12)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	env := map[string]string{"NATS_URL": broker.URL, "DATABASE_URL": dbURL, "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": "error"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data", filepath.Join(b.TempDir(), "hub"), "--gateway-addr", addr(0), "--gateway-admin-addr", addr(11), "--nats-port", strconv.Itoa(ports[1]),
			"--identity-addr", addr(2), "--crm-addr", addr(3), "--hubspot-addr", addr(4), "--support-addr", addr(5),
			"--zendesk-addr", addr(6), "--alerts-addr", addr(7), "--slack-addr", addr(8),
			"--projector-addr", addr(9), "--ops-addr", addr(10), "--vendor-limits", limits}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			b.Errorf("switchyard dev exited %d", code)
		}
	}()
	for _, i := range []int{11, 2, 3, 5, 9} { // the gateway's readiness is on its admin listener
		if err := waitReady(ctx, "http://"+addr(i)+"/readyz", 90*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	pool, err := postgres.Open(ctx, dbURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	_, js := broker.Connect(b)
	gen := newLifecycles(b)
	post := poster("http://"+addr(0)+"/webhooks/stripe", secret)

	b.ResetTimer()
	for range b.N {
		// Sustained: everything at once, then until the hub is idle.
		batch := gen.next(events / 3)
		start := time.Now()
		work := make(chan []byte)
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for body := range work {
					if err := post(body); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for _, e := range batch {
			work <- e.body
		}
		close(work)
		wg.Wait()
		if b.Failed() {
			b.FailNow() // a refused webhook: nothing to wait for
		}
		posted := time.Since(start)
		busy := waitIdle(b, ctx, js, pool, batch, start, 10*time.Minute)
		took := time.Since(start)
		b.ReportMetric(float64(len(batch))/took.Seconds(), "sustained_events/s")
		b.ReportMetric(float64(len(batch))/posted.Seconds(), "intake_events/s")
		fmt.Fprintf(os.Stderr, "pipeline: sustained %d events in %.2fs = %.0f events/s through every consumer (intake took %.2fs = %.0f/s)\n",
			len(batch), took.Seconds(), float64(len(batch))/took.Seconds(), posted.Seconds(), float64(len(batch))/posted.Seconds())
		fmt.Fprintf(os.Stderr, "pipeline: each consumer last busy at:%s\n", stages(busy))

		// Latency at each offered rate, on fresh customers, the hub idle
		// before each.
		for _, rate := range rates {
			batch = gen.next(rate * seconds / 3)
			lat, offered := measureLatency(b, ctx, pool, post, batch, rate)
			waitIdle(b, ctx, js, pool, batch, time.Now(), 10*time.Minute)
			if len(lat) == 0 {
				b.Fatalf("no event timed at %d/s over %d s", rate, seconds)
			}
			slices.Sort(lat)
			pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
			b.ReportMetric(float64(pct(0.99).Milliseconds()), fmt.Sprintf("p99_ms@%d/s", rate))
			fmt.Fprintf(os.Stderr, "pipeline: %d events offered at %d/s (%.0f/s achieved, %d timed): webhook→projection p50 %v, p99 %v, max %v\n",
				len(batch), rate, offered, len(lat), pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		}
	}
}

type pipelineEvent struct {
	id   string
	body []byte
}

// lifecycles makes customers' Stripe events from the fixtures: each
// customer has its own ids and email, and three events in the order Stripe
// sends them.
type lifecycles struct {
	templates [3]map[string]any
	n         int
}

func newLifecycles(b *testing.B) *lifecycles {
	g := &lifecycles{}
	for i, name := range []string{"customer.created", "invoice.payment_failed", "invoice.paid"} {
		if err := json.Unmarshal(testkit.StripeEvent(b, name), &g.templates[i]); err != nil {
			b.Fatal(err)
		}
	}
	// The fixture's customer has no email yet; the benchmark's do, so that
	// crm syncs each one.
	g.templates[0]["data"].(map[string]any)["object"].(map[string]any)["email"] = "jenny.rosen@example.com"
	return g
}

// next returns the events of n new customers, in customer order.
func (g *lifecycles) next(n int) []pipelineEvent {
	var out []pipelineEvent
	for range n {
		g.n++
		suffix := fmt.Sprintf("b%07d", g.n)
		for k, tpl := range g.templates {
			ev := rewrite(tpl, suffix).(map[string]any)
			id := fmt.Sprintf("evt_bench%d%s", k, suffix)
			ev["id"] = id
			body, _ := json.Marshal(ev)
			out = append(out, pipelineEvent{id: id, body: body})
		}
	}
	return out
}

// rewrite copies v, giving every Stripe object id and email the customer's
// suffix so that customers never share an object.
func rewrite(v any, suffix string) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = rewrite(e, suffix)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = rewrite(e, suffix)
		}
		return s
	case string:
		for _, p := range []string{"cus_", "in_", "ch_", "pi_", "sub_", "il_"} {
			if strings.HasPrefix(x, p) {
				return x + suffix
			}
		}
		if at := strings.IndexByte(x, '@'); at > 0 {
			return x[:at] + "+" + suffix + x[at:]
		}
		return x
	}
	return v
}

// poster signs and posts one webhook body, failing on any non-2xx.
func poster(url, secret string) func([]byte) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return func(body []byte) error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", stripesig.Sign(body, time.Now(), secret))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("webhook: %d %s", resp.StatusCode, msg)
		}
		return nil
	}
}

// measureLatency posts events at rate per second, each on its own schedule
// (start + i/rate, so a slow moment is caught up rather than dropped), and
// returns, for about 100 of them a second, the time from its POST to the
// projection holding it, and the rate actually offered.
func measureLatency(b *testing.B, ctx context.Context, pool *pgxpool.Pool, post func([]byte) error, events []pipelineEvent, rate int) ([]time.Duration, float64) {
	// About 100 events a second are timed: polling for every one of them
	// would load the database as much as the pipeline under test.
	every := max(1, rate/100)
	timed := (len(events) + every - 1) / every
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	var failed atomic.Int64
	var firstErr atomic.Value
	var offered time.Duration
	posting := make(chan struct{})
	go func() {
		defer close(posting)
		var wg sync.WaitGroup
		start := time.Now()
		pace := time.NewTimer(0)
		defer pace.Stop()
		for i, e := range events {
			<-pace.C // the load generator's clock, not a wait for a condition
			pace.Reset(time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))))
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.Now()
				if i%every == 0 {
					mu.Lock()
					sent[e.id] = t
					mu.Unlock()
				}
				if err := post(e.body); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}()
		}
		offered = time.Since(start)
		wg.Wait()
	}()
	sources := pgx.Identifier{projector.Schema, "event_sources"}.Sanitize()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	deadline := time.Now().Add(10 * time.Minute)
	for len(lat) < timed {
		<-poll.C
		if n := failed.Load(); n > 0 {
			<-posting
			b.Fatalf("%d webhooks refused, the first: %v", n, firstErr.Load())
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d timed events projected within 10 minutes", len(lat), timed)
		}
		mu.Lock()
		pending := make([]string, 0, len(sent))
		for id := range sent {
			pending = append(pending, id)
		}
		mu.Unlock()
		if len(pending) == 0 {
			continue
		}
		asked := time.Now() // the projection held them by then at the latest
		rows, err := pool.Query(ctx, `SELECT DISTINCT source_id FROM `+sources+` WHERE source_id = ANY($1)`, pending)
		if err != nil {
			b.Fatal(err)
		}
		seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		for _, id := range seen {
			lat = append(lat, asked.Sub(sent[id]))
			delete(sent, id)
		}
		mu.Unlock()
	}
	<-posting
	return lat, float64(len(events)) / offered.Seconds()
}

// waitIdle waits until the projection holds every event and every durable
// consumer of every stream has handled everything stored, and returns when
// each consumer was last seen busy, measured from start.
func waitIdle(b *testing.B, ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, events []pipelineEvent, start time.Time, d time.Duration) map[string]time.Duration {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.id
	}
	sources := pgx.Identifier{projector.Schema, "event_sources"}.Sanitize()
	busy := map[string]time.Duration{}
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		idle := true
		for _, name := range []string{natsbus.StreamStripe, natsbus.StreamBilling, natsbus.StreamCRM, natsbus.StreamSupport} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				b.Fatal(err)
			}
			l := s.ListConsumers(ctx)
			for info := range l.Info() {
				if info.Config.Durable == "" {
					continue // a reader's ephemeral consumer (the overview, the digest)
				}
				key := name + "/" + info.Name
				if _, ok := busy[key]; !ok {
					busy[key] = 0
				}
				if info.NumPending > 0 || info.NumAckPending > 0 {
					idle = false
					busy[key] = time.Since(start)
				}
			}
			if err := l.Err(); err != nil {
				b.Fatal(err)
			}
		}
		// The projection is counted only once the consumers are idle: the
		// count is a query as heavy as the work it would be measuring.
		n := -1
		if dlq, err := js.Stream(ctx, natsbus.StreamDLQ); err != nil {
			b.Fatal(err)
		} else if info, err := dlq.Info(ctx); err != nil {
			b.Fatal(err)
		} else if info.State.Msgs > 0 {
			b.Fatalf("%d dead letters: a failed event is not a handled one", info.State.Msgs)
		}
		if idle {
			if err := pool.QueryRow(ctx, `SELECT count(DISTINCT source_id) FROM `+sources+` WHERE source_id = ANY($1)`, ids).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n == len(ids) {
				return busy
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the hub did not settle within %v: %d of %d events projected (-1: consumers still busy); consumers last busy: %v", d, n, len(ids), busy)
		}
		<-tick.C
	}
}

// stages prints when each consumer finished.
func stages(busy map[string]time.Duration) string {
	keys := make([]string, 0, len(busy))
	for k := range busy {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return int(busy[a] - busy[b]) })
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s %.2fs", k, busy[k].Seconds())
	}
	return sb.String()
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
