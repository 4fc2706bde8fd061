package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"
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
//
//   - latency: each of BENCH_PIPELINE_RATES events/s (default "400 1000")
//     offered for BENCH_PIPELINE_SECONDS (default 5) on fresh customers;
//     for about 100 Stripe events a second, the time from the webhook's POST
//     to the projection holding it (the projector's event_sources, polled
//     every 10 ms), p50/p99/max. Above the sustained rate the backlog, and so the
//     latency, grows for as long as the run lasts.
//
//   - cost: during the sustained phase, a CPU profile of this process split
//     by the pprof label service (dev's runServices labels every service and
//     emulator, the broker is labelled nats, the posting clients generator,
//     the benchmark's own polling benchmark, the rest unlabelled: see
//     servicePart), and the CPU of the PostgreSQL backends serving the test
//     database (from /proc), each as µs per Stripe event;
//     BENCH_PIPELINE_CPUPROFILE=<file> keeps the profile, for
//     `go tool pprof -tagfocus service=<part>` (nats: also
//     -tagfocus account=.).
//
//   - history: with BENCH_PIPELINE_HISTORY=<events>, after the sustained
//     phase on the empty store the hub is given that much history through
//     the same webhooks (in drained rounds of 30,000, each round's rate
//     printed), then the sustained phase runs again on top of it
//     (sustained_events/s@history, and its ratio to the empty store's).
//     After each round the database is vacuumed and analysed, as
//     autovacuum does on a user's server (CI's shared server has it off).
//
// BENCH_PIPELINE_ENV=KEY=value,… sets more of dev's environment (say
// SUPPORT_WORKERS=32,CRM_WORKERS=64), to measure a setting.
//
// BENCH_PIPELINE_REPLICAS runs more than one copy of consumer services
// (dev's --replicas, e.g. identity=2): replicas share the cores, so on a
// machine the hub already saturates they show what scaling out costs, not
// what it gains.
//
// The services log at error level (BENCH_PIPELINE_LOG_LEVEL=info is what
// `switchyard dev` logs by default; the lines are encoded and discarded).
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
	history := envInt(b, "BENCH_PIPELINE_HISTORY", 0)
	// Posted and drained before anything is measured, so that the first
	// sustained phase measures the hub running, not starting: its pools
	// opening connections, statements being prepared, the heap growing to
	// its working size (without it the empty store measured 0.75× the
	// same hub's rate after history).
	warmup := envInt(b, "BENCH_PIPELINE_WARMUP", 1500)
	// The hub's own capacity by default; with plan, what the vendors'
	// smallest plans allow (Zendesk: 200 requests a minute, HubSpot: 100
	// per 10 s).
	limits := os.Getenv("BENCH_PIPELINE_VENDOR_LIMITS")
	if limits == "" {
		limits = "none"
	}
	var broker *testkit.Broker
	// The broker's goroutines inherit the label from this one.
	pprof.Do(context.Background(), pprof.Labels("service", "nats"), func(context.Context) { broker = testkit.NATS(b) })
	dbURL := testkit.Postgres(b)
	secret := "whsec_bench" + randomHex(16)
	ports := freePorts(b, 12)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	env := map[string]string{"NATS_URL": broker.URL, "DATABASE_URL": dbURL, "STRIPE_WEBHOOK_SECRET": secret, "LOG_LEVEL": orDefault(os.Getenv("BENCH_PIPELINE_LOG_LEVEL"), "error")}
	for _, kv := range strings.FieldsFunc(os.Getenv("BENCH_PIPELINE_ENV"), func(r rune) bool { return r == ',' }) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			b.Fatalf("BENCH_PIPELINE_ENV: %q is not KEY=value", kv)
		}
		env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var devErr lockedBuffer // its last lines are shown if dev fails
	go func() {
		done <- run(ctx, []string{"dev", "--data-dir", filepath.Join(b.TempDir(), "hub"), "--gateway-addr", addr(0), "--gateway-admin-addr", addr(11), "--nats-port", strconv.Itoa(ports[1]),
			"--identity-addr", addr(2), "--crm-addr", addr(3), "--hubspot-addr", addr(4), "--support-addr", addr(5),
			"--zendesk-addr", addr(6), "--alerts-addr", addr(7), "--slack-addr", addr(8),
			"--projector-addr", addr(9), "--ops-addr", addr(10), "--vendor-limits", limits, "--replicas", os.Getenv("BENCH_PIPELINE_REPLICAS")}, func(k string) string { return env[k] }, nil, io.Discard, &devErr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			lines := strings.Split(strings.TrimSpace(devErr.String()), "\n")
			b.Errorf("switchyard dev exited %d:\n%s", code, strings.Join(lines[max(0, len(lines)-20):], "\n"))
		}
	}()
	for _, i := range []int{11, 2, 3, 5, 9} { // the gateway's readiness is on its admin listener
		if err := waitReady(ctx, "http://"+addr(i)+"/readyz", 90*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	// From here on, what this goroutine starts (its pool, its polling) is
	// the benchmark's own CPU, not the hub's.
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("service", "benchmark")))
	defer pprof.SetGoroutineLabels(context.Background())
	pool, err := postgres.Open(ctx, withParam(dbURL, "application_name", benchAppName), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	_, js := broker.Connect(b)
	gen := newLifecycles(b)
	// A 503 (the event store did not answer in time) is posted again, as
	// Stripe would, and counted: the run goes on and says how often.
	var unavailable atomic.Int64
	gatewayReady := func() error { return waitReady(ctx, "http://"+addr(11)+"/readyz", time.Minute) }
	post := retryingUnavailable(poster("http://"+addr(0)+"/webhooks/stripe", secret), gatewayReady, &unavailable)
	defer func() {
		b.ReportMetric(float64(unavailable.Load()), "webhooks_503")
		fmt.Fprintf(os.Stderr, "pipeline: %d webhooks were answered 503 (store unavailable) and posted again\n", unavailable.Load())
	}()

	sustained := func(events int) float64 {
		batch := gen.next(events / 3)
		cost, err := startCPUCost(ctx, pool)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		postAll(b, ctx, post, batch)
		posted := time.Since(start)
		busy := waitIdle(b, ctx, js, pool, batch, start, 10*time.Minute)
		took := time.Since(start)
		costs, err := cost.stop(ctx, pool)
		if err != nil {
			b.Fatal(err)
		}
		if path := os.Getenv("BENCH_PIPELINE_CPUPROFILE"); path != "" && cost.profiled {
			// For `go tool pprof -tagfocus service=<part>`.
			if err := os.WriteFile(path, cost.prof.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		rate := float64(len(batch)) / took.Seconds()
		b.ReportMetric(float64(len(batch))/posted.Seconds(), "intake_events/s")
		fmt.Fprintf(os.Stderr, "pipeline: sustained %d events in %.2fs = %.0f events/s through every consumer (intake took %.2fs = %.0f/s)\n",
			len(batch), took.Seconds(), rate, posted.Seconds(), float64(len(batch))/posted.Seconds())
		fmt.Fprintf(os.Stderr, "pipeline: each consumer last busy at:%s\n", stages(busy))
		reportCPUCost(b, costs, len(batch), took)
		return rate
	}

	if batch := gen.next(warmup / 3); len(batch) > 0 {
		start := time.Now()
		postAll(b, ctx, post, batch)
		waitIdle(b, ctx, js, pool, batch, start, 10*time.Minute)
		fmt.Fprintf(os.Stderr, "pipeline: warmed up with %d events in %.2fs\n", len(batch), time.Since(start).Seconds())
	}

	b.ResetTimer()
	for range b.N {
		// Sustained: everything at once, then until the hub is idle.
		empty := sustained(events)
		b.ReportMetric(empty, "sustained_events/s")
		if history > 0 {
			seedHistory(b, ctx, js, pool, gen, post, history)
			withHistory := sustained(events)
			b.ReportMetric(withHistory, "sustained_events/s@history")
			fmt.Fprintf(os.Stderr, "pipeline: with %d events of history %.0f events/s, %.2f× the rate on the empty store\n", history, withHistory, withHistory/empty)
		}

		// Latency at each offered rate, on fresh customers, the hub idle
		// before each.
		for _, rate := range rates {
			batch := gen.next(rate * seconds / 3)
			began := time.Now() // to find the slowest in PostgreSQL's log
			lat, most, offered := measureLatency(b, ctx, js, pool, post, batch, rate)
			waitIdle(b, ctx, js, pool, batch, time.Now(), 10*time.Minute)
			if len(lat) == 0 {
				b.Fatalf("no event timed at %d/s over %d s", rate, seconds)
			}
			slices.SortFunc(lat, func(a, b timedEvent) int { return cmp.Compare(a.latency, b.latency) })
			at := func(p float64) int { return min(len(lat)-1, int(p*float64(len(lat)))) }
			pct := func(p float64) time.Duration { return lat[at(p)].latency }
			b.ReportMetric(float64(pct(0.99).Milliseconds()), fmt.Sprintf("p99_ms@%d/s", rate))
			fmt.Fprintf(os.Stderr, "pipeline: %d events offered at %d/s (%.0f/s achieved, %d timed): webhook→projection p50 %v, p99 %v, max %v\n",
				len(batch), rate, offered, len(lat), pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].latency.Round(time.Millisecond))
			// Where the slowest waited: when they were sent, and the
			// consumers' largest backlogs over the phase.
			first, last := time.Duration(math.MaxInt64), time.Duration(0)
			for _, e := range lat[at(0.99):] {
				first, last = min(first, e.sentAt), max(last, e.sentAt)
			}
			clock := func(d time.Duration) string { return began.Add(d).UTC().Format("15:04:05.000") }
			fmt.Fprintf(os.Stderr, "pipeline: at %d/s the slowest 1%% were sent %.2f–%.2fs into the phase (%s–%s UTC); largest backlogs:%s\n",
				rate, first.Seconds(), last.Seconds(), clock(first), clock(last), backlogs(most))
		}
	}
}

// postAll posts events from 32 clients as fast as the gateway takes them,
// failing the benchmark on a refused webhook.
func postAll(b *testing.B, ctx context.Context, post func([]byte) error, events []pipelineEvent) {
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The HTTP client's connection goroutines inherit the label.
			pprof.Do(ctx, pprof.Labels("service", "generator"), func(context.Context) {
				for body := range work {
					if err := post(body); err != nil {
						b.Error(err)
					}
				}
			})
		}()
	}
	for _, e := range events {
		work <- e.body
	}
	close(work)
	wg.Wait()
	if b.Failed() {
		b.FailNow() // a refused webhook: nothing to wait for
	}
}

// seedHistory gives the store a history of n events (n/3 customers) the
// way a user's store gets one: posted as webhooks and handled by every
// service, in rounds of up to 30,000 events, each drained before the next;
// it prints each round's rate, so a slowdown as the store grows shows.
func seedHistory(b *testing.B, ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, gen *lifecycles, post func([]byte) error, n int) {
	for done := 0; done < n; {
		batch := gen.next(min(30000, n-done) / 3)
		if len(batch) == 0 {
			return
		}
		start := time.Now()
		postAll(b, ctx, post, batch)
		waitIdle(b, ctx, js, pool, batch, start, time.Hour)
		took := time.Since(start)
		done += len(batch)
		// What autovacuum does for a user's store; the shared server the
		// tests run on has it off (CI's configuration), and a store that
		// is never analysed or vacuumed is planned blind and bloats.
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "pipeline: history %d/%d events: this round %.0f events/s\n", done, n, float64(len(batch))/took.Seconds())
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

// webhookError is a webhook's answer other than 2xx.
type webhookError struct {
	status int
	body   []byte
}

func (e *webhookError) Error() string { return fmt.Sprintf("webhook: %d %s", e.status, e.body) }

// retryingUnavailable posts again a webhook the gateway answered 503 (as
// Stripe retries it), once ready says the gateway is ready (polled with a
// deadline), at most ten times, counting each 503 in n.
func retryingUnavailable(post func([]byte) error, ready func() error, n *atomic.Int64) func([]byte) error {
	return func(body []byte) error {
		for attempt := 1; ; attempt++ {
			err := post(body)
			var werr *webhookError
			if !errors.As(err, &werr) || werr.status != http.StatusServiceUnavailable || attempt == 10 {
				return err
			}
			n.Add(1)
			if rerr := ready(); rerr != nil {
				return fmt.Errorf("%w; then: %v", err, rerr)
			}
		}
	}
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
			return &webhookError{resp.StatusCode, msg}
		}
		return nil
	}
}

// measureLatency posts events at rate per second, each on its own schedule
// (start + i/rate, so a slow moment is caught up rather than dropped), and
// returns, for about 100 of them a second, the time from its POST to the
// projection holding it, and the rate actually offered.
// timedEvent is one timed event of measureLatency: its latency, and when
// it was sent, from the phase's start.
type timedEvent struct{ latency, sentAt time.Duration }

// backlog is a consumer's largest backlog (pending and unacknowledged
// messages) during a latency phase, and when it was seen.
type backlog struct {
	n  uint64
	at time.Duration
}

func measureLatency(b *testing.B, ctx context.Context, js jetstream.JetStream, pool *pgxpool.Pool, post func([]byte) error, events []pipelineEvent, rate int) ([]timedEvent, map[string]backlog, float64) {
	// About 100 events a second are timed: polling for every one of them
	// would load the database as much as the pipeline under test.
	every := max(1, rate/100)
	timed := (len(events) + every - 1) / every
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []timedEvent
	var failed atomic.Int64
	var firstErr atomic.Value
	var offered time.Duration
	posting := make(chan struct{})
	start := time.Now()
	sampled := make(chan map[string]backlog, 1)
	go func() { sampled <- sampleBacklogs(ctx, js, start, posting) }()
	go func() {
		defer close(posting)
		var wg sync.WaitGroup
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
			lat = append(lat, timedEvent{asked.Sub(sent[id]), sent[id].Sub(start)})
			delete(sent, id)
		}
		mu.Unlock()
	}
	<-posting
	return lat, <-sampled, float64(len(events)) / offered.Seconds()
}

// sampleBacklogs samples every durable consumer's backlog every 100 ms
// until done, and returns each one's largest: where a latency phase's
// slowest events waited.
func sampleBacklogs(ctx context.Context, js jetstream.JetStream, start time.Time, done <-chan struct{}) map[string]backlog {
	most := map[string]backlog{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, name := range []string{natsbus.StreamStripe, natsbus.StreamBilling, natsbus.StreamCRM, natsbus.StreamSupport} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				continue
			}
			for info := range s.ListConsumers(ctx).Info() {
				key := name + "/" + info.Name
				if n := info.NumPending + uint64(info.NumAckPending); info.Config.Durable != "" && n > most[key].n {
					most[key] = backlog{n, time.Since(start)}
				}
			}
		}
		select {
		case <-done:
			return most
		case <-tick.C:
		}
	}
}

// backlogs prints each consumer's largest backlog, largest first.
func backlogs(most map[string]backlog) string {
	keys := slices.Collect(maps.Keys(most))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(most[b].n, most[a].n) })
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s %d at %.1fs", k, most[k].n, most[k].at.Seconds())
	}
	return sb.String()
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
	tick := time.NewTicker(100 * time.Millisecond)
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

// benchAppName is the application_name of the benchmark's own connections,
// so their backends' CPU is told from the hub's.
const benchAppName = "pipeline-bench"

func withParam(url, key, value string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + key + "=" + value
}

// cpuCost measures one phase's CPU: a CPU profile of this process (to be
// split by pprof label), the process's own CPU time (the profile's check),
// and the PostgreSQL backends' CPU from /proc.
type cpuCost struct {
	prof     bytes.Buffer
	profiled bool // false when a profile was already running (go test -cpuprofile)
	rusage   time.Duration
	pg       map[int]pgProc
}

// startCPUCost starts measuring. The profile samples at 100 Hz: a phase of
// a few seconds on 2 cores gives a thousand samples or more.
func startCPUCost(ctx context.Context, pool *pgxpool.Pool) (*cpuCost, error) {
	c := &cpuCost{rusage: processCPU()}
	var err error
	if c.pg, err = postgresCPU(ctx, pool); err != nil {
		return nil, err
	}
	c.profiled = pprof.StartCPUProfile(&c.prof) == nil
	return c, nil
}

// phaseCost is one phase's CPU: by pprof label ("" for unlabelled), the
// process's total, PostgreSQL's by group, and the test database's backends
// by the service whose connection they serve (application_name).
type phaseCost struct {
	byLabel  map[string]time.Duration
	process  time.Duration
	postgres map[string]time.Duration
	pgByApp  map[string]time.Duration
}

func (c *cpuCost) stop(ctx context.Context, pool *pgxpool.Pool) (phaseCost, error) {
	var pc phaseCost
	if c.profiled {
		pprof.StopCPUProfile()
	}
	pc.process = processCPU() - c.rusage
	after, err := postgresCPU(ctx, pool)
	if err != nil {
		return pc, err
	}
	pc.postgres, pc.pgByApp = map[string]time.Duration{}, map[string]time.Duration{}
	for pid, p := range after {
		d := p.cpu - c.pg[pid].cpu // a backend new in the phase counts from 0
		pc.postgres[p.group] += d
		if p.group == "postgres" {
			pc.pgByApp[cmp.Or(strings.TrimPrefix(p.app, "switchyard-"), "other")] += d
		}
	}
	if c.profiled {
		if pc.byLabel, err = cpuBy(c.prof.Bytes(), servicePart); err != nil {
			return pc, err
		}
	}
	return pc, nil
}

// servicePart is the part of the hub a sample's pprof labels name: the
// service label that dev and this benchmark set, else nats for the
// goroutines the NATS server labels itself (its streams' and consumers'
// loops: nats-server replaces inherited labels with its own account,
// stream and consumer labels), else "" (the runtime's own goroutines, and
// those a timer started).
func servicePart(labels map[string][]string) string {
	switch {
	case len(labels["service"]) > 0:
		return labels["service"][0]
	case len(labels["account"]) > 0 || len(labels["stream"]) > 0:
		return "nats"
	}
	return ""
}

// cpuBy sums a CPU profile's samples by the part that part names from each
// sample's pprof labels.
func cpuBy(data []byte, part func(labels map[string][]string) string) (map[string]time.Duration, error) {
	p, err := profile.ParseData(data)
	if err != nil {
		return nil, fmt.Errorf("parse CPU profile: %w", err)
	}
	idx := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" && t.Unit == "nanoseconds" })
	if idx < 0 {
		return nil, fmt.Errorf("CPU profile without cpu/nanoseconds samples")
	}
	out := map[string]time.Duration{}
	for _, s := range p.Sample {
		out[part(s.Label)] += time.Duration(s.Value[idx])
	}
	return out, nil
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgProc is one PostgreSQL process's CPU so far and what it serves.
type pgProc struct {
	group string
	app   string // the client's application_name: switchyard-<service> for a service's pool
	cpu   time.Duration
}

// postgresCPU reads, from /proc, the CPU of the server's processes that
// pg_stat_activity shows: the test database's backends (the hub's, and the
// benchmark's own under benchAppName), and the server-wide ones (WAL
// writer, checkpointer, …), which on a shared server also work for other
// databases. Processes /proc does not show (another machine, a container)
// are left out.
func postgresCPU(ctx context.Context, pool *pgxpool.Pool) (map[int]pgProc, error) {
	rows, err := pool.Query(ctx, `SELECT pid, CASE WHEN datname = current_database() THEN
		CASE WHEN application_name = $1 THEN 'postgres-benchmark' ELSE 'postgres' END
		WHEN datname IS NULL THEN 'postgres-server' END, coalesce(application_name, '')
		FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL`, benchAppName)
	if err != nil {
		return nil, fmt.Errorf("postgres backends: %w", err)
	}
	type row struct {
		PID   int
		Group string
		App   string
	}
	procs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return nil, fmt.Errorf("postgres backends: %w", err)
	}
	out := map[int]pgProc{}
	for _, r := range procs {
		if cpu, ok := procCPU(r.PID); ok {
			out[r.PID] = pgProc{group: r.Group, app: r.App, cpu: cpu}
		}
	}
	return out, nil
}

// procCPU is a process's utime+stime from /proc/<pid>/stat, in USER_HZ
// (100 a second on Linux) ticks.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command (which may hold spaces) in parentheses:
	// state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// reportCPUCost reports each part's CPU per event and prints the table.
func reportCPUCost(b *testing.B, c phaseCost, events int, took time.Duration) {
	perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(events) }
	type part struct {
		name string
		cpu  time.Duration
	}
	var parts []part
	var profiled time.Duration
	byLabel := maps.Clone(c.byLabel)
	for _, label := range []string{"gateway", "identity", "crm", "support", "alerts", "projector", "nats"} {
		if c.byLabel != nil {
			byLabel[label] += 0 // a part that never ran shows as 0, not missing
		}
	}
	for label, d := range byLabel {
		profiled += d
		if label == "" {
			label = "unlabelled"
		}
		parts = append(parts, part{label, d})
	}
	slices.SortFunc(parts, func(a, b part) int { return cmp.Or(cmp.Compare(b.cpu, a.cpu), strings.Compare(a.name, b.name)) })
	var pg []part
	var pgTotal time.Duration
	for group, d := range c.postgres {
		pg = append(pg, part{group, d})
		if group == "postgres" {
			pgTotal += d
		}
	}
	slices.SortFunc(pg, func(a, b part) int { return strings.Compare(a.name, b.name) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "pipeline: CPU per Stripe event over the sustained phase (%d events, %.2fs wall, %d cores):\n", events, took.Seconds(), runtime.NumCPU())
	fmt.Fprintf(&sb, "  %-20s %9s %9s %7s\n", "part", "CPU s", "µs/event", "share")
	row := func(name string, d, of time.Duration) {
		share := ""
		if of > 0 {
			share = fmt.Sprintf("%.1f%%", 100*float64(d)/float64(of))
		}
		fmt.Fprintf(&sb, "  %-20s %9.2f %9.0f %7s\n", name, d.Seconds(), perEvent(d), share)
	}
	if c.byLabel == nil {
		fmt.Fprintf(&sb, "  (no CPU profile: one was already running)\n")
	}
	for _, p := range parts {
		row(p.name, p.cpu, profiled)
		b.ReportMetric(perEvent(p.cpu), "µs/event-"+p.name)
	}
	row("profiled total", profiled, 0)
	row("process (rusage)", c.process, 0)
	for _, p := range pg {
		row(p.name, p.cpu, 0)
		b.ReportMetric(perEvent(p.cpu), "µs/event-"+p.name)
		if p.name != "postgres" {
			continue
		}
		apps := slices.Collect(maps.Keys(c.pgByApp))
		slices.SortFunc(apps, func(a, b string) int { return cmp.Compare(c.pgByApp[b], c.pgByApp[a]) })
		for _, app := range apps {
			row("  for "+app, c.pgByApp[app], p.cpu)
		}
	}
	// What production would spend: the services, the broker, the runtime
	// and PostgreSQL, without the emulators, the generator and the
	// benchmark's polling (the runtime's share includes GC of their garbage).
	hub := profiled + pgTotal
	for label, d := range c.byLabel {
		if label == "generator" || label == "benchmark" || strings.HasSuffix(label, "-emulator") {
			hub -= d
		}
	}
	row("hub + postgres", hub, 0)
	b.ReportMetric(perEvent(hub), "µs/event-hub+postgres")
	fmt.Fprint(os.Stderr, sb.String())
}
