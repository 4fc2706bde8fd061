package view_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/projector/internal/lifegen"
	"github.com/switchyard/switchyard/services/projector/internal/view"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// Sizes: lifegen averages ~10 messages per customer, so the rebuild reads
// about 300k messages and the live path about 50k. REBUILD_BENCH_CUSTOMERS
// sets BenchmarkRebuild's (100000 for about a million messages).
const (
	rebuildCustomers = 30000
	liveCustomers    = 5000
)

// benchRebuildCustomers is rebuildCustomers or REBUILD_BENCH_CUSTOMERS.
func benchRebuildCustomers(b *testing.B) int {
	b.Helper()
	env := os.Getenv("REBUILD_BENCH_CUSTOMERS")
	if env == "" {
		return rebuildCustomers
	}
	n, err := strconv.Atoi(env)
	if err != nil || n <= 0 {
		b.Fatalf("REBUILD_BENCH_CUSTOMERS=%q: want a positive number of customers", env)
	}
	return n
}

type benchEnv struct {
	js   jetstream.JetStream
	pool *pgxpool.Pool
	msgs int
}

// benchSetup stores the generated lifecycles in an embedded JetStream.
func benchSetup(b *testing.B, customers int) *benchEnv {
	b.Helper()
	return setupStreams(b, lifegen.Generate(1, customers))
}

// setupStreams stores msgs in an embedded JetStream, with a PostgreSQL.
func setupStreams(b testing.TB, msgs []lifegen.Msg) *benchEnv {
	b.Helper()
	ctx := context.Background()
	br := testkit.NATS(b)
	_, js := br.Connect(b)
	pool, err := postgres.Open(ctx, testkit.Postgres(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if err := ledger.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	// A dedup window of a second while storing: within the hour's window
	// the embedded server would keep a million message ids, a GC-scanned
	// index in this process that cost the rebuild a quarter of its CPU,
	// where the server it reads in production runs in its own process.
	for _, name := range view.Streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.Duplicates = time.Second
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	}
	for i, m := range msgs {
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}); err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 { // under the client's async publish limit (4000)
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	e := &benchEnv{js: js, pool: pool}
	for _, name := range view.Streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		e.msgs += int(info.State.Msgs)
	}
	return e
}

func resetProjection(b testing.TB, pool *pgxpool.Pool) {
	b.Helper()
	if _, err := pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS projection CASCADE"); err != nil {
		b.Fatal(err)
	}
	if err := migrations.Projection(context.Background(), pool); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRebuild: the whole streams into fresh tables and swapped in.
func BenchmarkRebuild(b *testing.B) {
	e := benchSetup(b, benchRebuildCustomers(b))
	resetProjection(b, e.pool)
	var events, secs float64
	// What a rebuild holds: the peak, above where it started, of the heap
	// live at the end of each GC cycle (what it keeps, not the garbage the
	// pacer lets accumulate up to GOGC), and of all heap objects (live and
	// not yet swept). Upper bounds: the embedded NATS server and the
	// client's buffers share the heap. Per event they should fall as the
	// history grows: the rebuild holds a batch and a customer at a time.
	runtime.GC()
	baseLive, baseHeap := heapBytes()
	var peakLive, peakHeap atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				live, heap := heapBytes()
				if live > peakLive.Load() {
					peakLive.Store(live)
				}
				if heap > peakHeap.Load() {
					peakHeap.Store(heap)
				}
			}
		}
	}()
	// The process's peak RSS during the rebuilds (VmHWM after resetting
	// it, with what storing the messages freed given back), the embedded
	// NATS server's included.
	debug.FreeOSMemory()
	resetPeakRSS(b)
	goCPU0, pgCPU0 := processCPU(b), backendsCPU(b, e.pool)
	stopProfile := benchCPUProfile(b)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)) // the phases' times
	}
	for b.Loop() {
		rep, err := view.Rebuild(context.Background(), e.pool, e.js, log)
		if err != nil {
			b.Fatal(err)
		}
		events, secs = events+float64(rep.Events+rep.Duplicates+rep.Skipped), secs+rep.Seconds
	}
	stopProfile()
	b.ReportMetric((processCPU(b) - goCPU0).Seconds(), "go_cpu_s")
	var pgCPU time.Duration
	for pid, t := range backendsCPU(b, e.pool) {
		pgCPU += t - pgCPU0[pid]
	}
	b.ReportMetric(pgCPU.Seconds(), "pg_cpu_s")
	if testing.Verbose() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.Logf("live heap before the rebuilds %d MB (the embedded NATS server's included), GC cycles %d", baseLive>>20, ms.NumGC)
	}
	close(stop)
	<-sampled
	b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak_rss_MB")
	b.ReportMetric(events/secs, "events/s")
	b.ReportMetric(float64(e.msgs), "events")
	above := func(peak, base uint64) float64 { return float64(max(peak, base) - base) }
	b.ReportMetric(above(peakLive.Load(), baseLive)/(1<<20), "peak_live_MB")
	b.ReportMetric(above(peakLive.Load(), baseLive)/float64(e.msgs), "peak_live_B/event")
	b.ReportMetric(above(peakHeap.Load(), baseHeap)/(1<<20), "peak_heap_MB")
}

// benchCPUProfile profiles what follows, until the returned stop, into the
// file REBUILD_BENCH_CPUPROFILE names, if set: the rebuild alone, where
// -cpuprofile also takes in storing the messages.
func benchCPUProfile(b *testing.B) (stop func()) {
	b.Helper()
	name := os.Getenv("REBUILD_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// processCPU is the CPU time the process has used (the embedded NATS
// server's included).
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU is the CPU time each PostgreSQL backend connected to the
// benchmark's database has used, by pid (Linux, a local server): what the
// rebuild costs the database beside what it costs the process, on a
// machine whose cores others share. Parallel workers are not counted.
func backendsCPU(b *testing.B, pool *pgxpool.Pool) map[int]time.Duration {
	b.Helper()
	rows, err := pool.Query(context.Background(), "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'")
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	cpu := map[int]time.Duration{}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone, or not on this machine
		}
		// utime and stime, in clock ticks (100 a second), are the 14th
		// and 15th fields; the 2nd, (comm), may hold spaces.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		cpu[int(pid)] = time.Duration(ut+st) * 10 * time.Millisecond
	}
	return cpu
}

// resetPeakRSS resets the process's peak resident set size (Linux).
func resetPeakRSS(b *testing.B) {
	b.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset peak RSS: %v", err)
	}
}

// peakRSS is the process's peak resident set size in bytes since it was
// last reset (VmHWM).
func peakRSS(b *testing.B) int {
	b.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
			if err != nil {
				b.Fatalf("VmHWM %q: %v", line, err)
			}
			return n << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// heapBytes reads, without stopping the world, the heap live at the end of
// the last GC cycle and the bytes of all heap objects.
func heapBytes() (live, objects uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// BenchmarkLive: the live path — durable batch consumers on the three
// streams, one transaction per batch — from an empty projection to caught up.
func BenchmarkLive(b *testing.B) {
	e := benchSetup(b, liveCustomers)
	var secs float64
	n := 0
	for i := 0; b.Loop(); i++ {
		resetProjection(b, e.pool)
		store := view.NewStore(e.pool, view.Schema)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		name := fmt.Sprintf("bench-live-%d", i)
		start := time.Now()
		for _, stream := range view.Streams {
			c, err := consumer.NewBatch(e.js, ledger.New(e.pool), consumer.Config{Name: name, Stream: stream, Batch: 500, Create: true}, view.Handler(store))
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = c.Run(ctx) }()
		}
		waitLive(b, e.js, name)
		secs += time.Since(start).Seconds()
		n += e.msgs
		cancel()
		wg.Wait()
		for _, stream := range view.Streams {
			_ = e.js.DeleteConsumer(context.Background(), stream, name)
		}
	}
	b.ReportMetric(float64(n)/secs, "events/s")
}

// waitLive polls until the consumers have applied everything, for at most
// five minutes.
func waitLive(b *testing.B, js jetstream.JetStream, name string) {
	b.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Minute)
	for !liveDone(b, js, name) {
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatal("the live projection did not catch up within 5 minutes")
		}
	}
}

func liveDone(b *testing.B, js jetstream.JetStream, name string) bool {
	for _, stream := range view.Streams {
		if ok, err := testkit.Settled(context.Background(), js, stream, name); err != nil || !ok {
			return false // an error: ask again
		}
	}
	return true
}

// BenchmarkRawUpsert is the baseline: the same number of rows of the same
// size upserted straight into PostgreSQL, 500 per statement, no NATS, no
// decoding, no fold.
func BenchmarkRawUpsert(b *testing.B) {
	e := benchSetup(b, 0)
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (id text PRIMARY KEY, customer_id text NOT NULL, payload bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	msgs := lifegen.Generate(1, rebuildCustomers)
	var secs float64
	n := 0
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		for off := 0; off < len(msgs); off += 500 {
			end := min(off+500, len(msgs))
			ids, custs, payloads := make([]string, 0, 500), make([]string, 0, 500), make([][]byte, 0, 500)
			for _, m := range msgs[off:end] {
				ids, custs, payloads = append(ids, fmt.Sprint(i, m.ID())), append(custs, m.ID()), append(payloads, m.Data)
			}
			if _, err := e.pool.Exec(ctx, `INSERT INTO bench_raw SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
				ON CONFLICT (id) DO UPDATE SET payload = excluded.payload`, ids, custs, payloads); err != nil {
				b.Fatal(err)
			}
		}
		secs += time.Since(start).Seconds()
		n += len(msgs)
	}
	b.ReportMetric(float64(n)/secs, "events/s")
}

// BenchmarkRawCopy is the bulk-load ceiling: COPY of the same rows.
func BenchmarkRawCopy(b *testing.B) {
	e := benchSetup(b, 0)
	ctx := context.Background()
	msgs := lifegen.Generate(1, rebuildCustomers)
	var secs float64
	n := 0
	for b.Loop() {
		if _, err := e.pool.Exec(ctx, `DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (id text PRIMARY KEY, customer_id text NOT NULL, payload bytea NOT NULL)`); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		rows := make([][]any, len(msgs))
		for j, m := range msgs {
			rows[j] = []any{fmt.Sprint(j, m.ID()), m.ID(), m.Data}
		}
		if _, err := e.pool.CopyFrom(ctx, pgx.Identifier{"bench_copy"}, []string{"id", "customer_id", "payload"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		secs += time.Since(start).Seconds()
		n += len(msgs)
	}
	b.ReportMetric(float64(n)/secs, "events/s")
}
