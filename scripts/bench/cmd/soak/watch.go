package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/natsbus"
)

// sampleEvery is how often the consumers' lag is read.
const sampleEvery = 5 * time.Second

// watched are the streams whose durable consumers do the hub's work.
var watched = []string{natsbus.StreamStripe, natsbus.StreamBilling, natsbus.StreamCRM, natsbus.StreamSupport}

// watcher reads the hub from outside: its process's memory, and JetStream
// as the operator identity the dev hub saved (what the CLI uses).
type watcher struct {
	h          *hub
	nc         *nats.Conn
	js         jetstream.JetStream
	rssProblem string // the first RSS growth over the limit, if any
}

func newWatcher(h *hub) (*watcher, error) {
	opts := []nats.Option{nats.Name("soak"), nats.MaxReconnects(-1)}
	if h.broker == nil { // dev's embedded server: one identity per part
		pw, err := os.ReadFile(filepath.Join(h.dataDir, "nats-users", natsbus.IdentityOperator))
		if err != nil {
			return nil, fmt.Errorf("the dev hub's operator NATS identity: %w", err)
		}
		opts = append(opts, nats.UserInfo(natsbus.IdentityOperator, strings.TrimSpace(string(pw))),
			nats.CustomInboxPrefix(natsbus.InboxPrefix(natsbus.IdentityOperator)))
	}
	nc, err := nats.Connect(h.natsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to the hub's NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &watcher{h: h, nc: nc, js: js}, nil
}

func (w *watcher) close() { w.nc.Close() }

// lag is the largest backlog (pending + unacknowledged) among the durable
// consumers, and whose it is.
func (w *watcher) lag(ctx context.Context) (n uint64, who string, idle bool, err error) {
	idle = true
	for _, name := range watched {
		s, err := w.js.Stream(ctx, name)
		if err != nil {
			return 0, "", false, fmt.Errorf("stream %s: %w", name, err)
		}
		l := s.ListConsumers(ctx)
		for info := range l.Info() {
			if info.Config.Durable == "" {
				continue // a reader's ephemeral consumer
			}
			backlog := info.NumPending + uint64(info.NumAckPending)
			if backlog > 0 {
				idle = false
			}
			if backlog > n || who == "" {
				n, who = backlog, info.Name
			}
		}
		if err := l.Err(); err != nil {
			return 0, "", false, fmt.Errorf("consumers of %s: %w", name, err)
		}
	}
	return n, who, idle, nil
}

func (w *watcher) streamMsgs(ctx context.Context, name string) (uint64, error) {
	s, err := w.js.Stream(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	return info.State.Msgs, nil
}

// report prints a line every interval until loadDone, and remembers the
// first RSS growth over limit since the first line.
func (w *watcher) report(ctx context.Context, stdout io.Writer, l *load, loadDone <-chan struct{}, interval time.Duration, limit float64) {
	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sample := time.NewTicker(sampleEvery)
	defer sample.Stop()
	var samples []uint64
	worst := map[string]uint64{}
	var baseRSS uint64
	lastDelivered, last := int64(0), start
	for {
		select {
		case <-ctx.Done():
			return
		case <-loadDone:
			return
		case <-sample.C:
			n, who, _, err := w.lag(ctx)
			if err != nil {
				fmt.Fprintln(stdout, "soak: lag:", err)
				continue
			}
			samples = append(samples, n)
			worst[who] = max(worst[who], n)
		case now := <-tick.C:
			delivered := l.delivered.Load()
			rate := float64(delivered-lastDelivered) / now.Sub(last).Seconds()
			lastDelivered, last = delivered, now
			rss := rssOf(w.h.pid())
			pg := descendantsPSS(w.h.pid())
			broker := ""
			if pid := w.h.brokerPID(); pid != 0 {
				broker = "  NATS RSS " + mib(rssOf(pid))
			}
			growth := ""
			if baseRSS == 0 {
				baseRSS = rss
			} else if rss > 0 {
				g := float64(rss)/float64(baseRSS) - 1
				growth = fmt.Sprintf(" (%+.0f %%)", 100*g)
				if g > limit {
					growth += " RSS GREW OVER " + strconv.Itoa(int(100*limit)) + " %"
					if w.rssProblem == "" {
						w.rssProblem = fmt.Sprintf("hub RSS %s at %s, %+.0f %% over the first interval's %s", mib(rss), now.Sub(start).Round(time.Second), 100*g, mib(baseRSS))
					}
				}
			}
			dl, err := w.streamMsgs(ctx, natsbus.StreamDLQ)
			dls := strconv.FormatUint(dl, 10)
			if err != nil {
				dls = "? (" + err.Error() + ")"
			}
			p99, whose := percentile(samples, 0.99), worstOf(worst)
			fmt.Fprintf(stdout, "soak: %8s  delivered %5.1f/s (%d retries)  hub RSS %s%s%s  postgres PSS %s  lag p99 %d msgs (max %d, %s)  dead letters %s\n",
				now.Sub(start).Round(time.Second), rate, l.retries.Load(), mib(rss), growth, broker, mib(pg), p99, slices.Max(append(samples, 0)), whose, dls)
			samples, worst = samples[:0], map[string]uint64{}
		}
	}
}

func percentile(v []uint64, p float64) uint64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func worstOf(m map[string]uint64) string {
	who, n := "none", uint64(0)
	for k, v := range m {
		if v > n || (v == n && k < who) {
			who, n = k, v
		}
	}
	if n == 0 {
		return "none"
	}
	return who
}

// rssOf is the process's VmRSS in bytes, 0 if unknown.
func rssOf(pid int) uint64 {
	return procField(filepath.Join("/proc", strconv.Itoa(pid), "status"), "VmRSS:")
}

// descendantsPSS is the proportional set size of pid's descendants (the
// private PostgreSQL's processes): PSS splits the shared buffers among
// them, where summing RSS would count them once per process.
func descendantsPSS(pid int) uint64 {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var sum uint64
	queue := slices.Clone(children[pid])
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		sum += procField(filepath.Join("/proc", strconv.Itoa(p), "smaps_rollup"), "Pss:")
		queue = append(queue, children[p]...)
	}
	return sum
}

// procField reads a "Name:   123 kB" line of a /proc file, in bytes.
func procField(path, name string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// gatewayDuplicates is the gateway's count of webhooks it answered as
// duplicates, from its metrics; -1 if unreadable.
func (w *watcher) gatewayDuplicates(ctx context.Context) int64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.h.metrics["gateway"], nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "switchyard_gateway_webhooks_received_total{") && strings.Contains(line, `result="duplicate"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return -1
			}
			return int64(v)
		}
	}
	return -1
}
