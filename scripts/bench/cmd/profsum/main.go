// Command profsum sums a CPU profile of a webhook handler by where the time
// goes: signature verification, JSON, the HTTP server, the NATS client,
// telemetry, the handler's own code, allocation, GC, syscalls and the
// scheduler. bench.sh runs it on the profiles it takes of the gateway and
// the textbook handler at saturation (BENCH_PPROF=1), so the two can be
// compared group by group; `go tool pprof -top` gives the functions.
//
//	profsum [-per-request us] cpu.pprof
//
// Each sample counts once, in the first group that claims it:
//
//  1. GC: the stack runs a GC worker, an assist or the sweeper;
//  2. syscalls: the stack makes a system call (socket read and write,
//     epoll, futex), split by the component that made it (see 4);
//  3. allocation: the stack is in the allocator (mallocgc and its callers
//     growslice, newobject, makeslice);
//  4. otherwise the component of the innermost frame that has one: the
//     standard library's general-purpose packages (runtime, sync, strings,
//     strconv, …) have none, so a memmove in encoding/json is JSON's and a
//     strconv call in the handler is the handler's; a stack with no
//     component at all is the scheduler's and runtime's.
//
// With -per-request, the CPU the target spent per request over the same run
// (bench.sh's target_cpu_us), each group also gets its microseconds per request.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "profsum:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("profsum", flag.ContinueOnError)
	perRequest := fs.Float64("per-request", 0, "the target's CPU microseconds per request over the profiled run; 0: shares only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: profsum [-per-request us] cpu.pprof")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return fmt.Errorf("parse %s: %w", fs.Arg(0), err)
	}
	groups, total, err := sum(p)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	return report(stdout, groups, total, time.Duration(p.DurationNanos), *perRequest)
}

// Group is the CPU time one group of samples took.
type Group struct {
	Name string
	CPU  time.Duration
}

// sum returns p's CPU time by group, largest first, and in all.
func sum(p *profile.Profile) ([]Group, time.Duration, error) {
	idx := slices.IndexFunc(p.SampleType, func(t *profile.ValueType) bool { return t.Type == "cpu" && t.Unit == "nanoseconds" })
	if idx < 0 {
		return nil, 0, errors.New("not a CPU profile: no cpu/nanoseconds samples")
	}
	by := map[string]time.Duration{}
	var total time.Duration
	for _, s := range p.Sample {
		d := time.Duration(s.Value[idx])
		by[classify(frames(s))] += d
		total += d
	}
	groups := make([]Group, 0, len(by))
	for name, cpu := range by {
		groups = append(groups, Group{name, cpu})
	}
	slices.SortFunc(groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.CPU, a.CPU), strings.Compare(a.Name, b.Name))
	})
	return groups, total, nil
}

// frames are s's function names, the innermost first (inlined calls too).
func frames(s *profile.Sample) []string {
	var out []string
	for _, loc := range s.Location {
		for _, l := range loc.Line { // the innermost first: the last is the function they were inlined into
			if l.Function != nil {
				out = append(out, l.Function.Name)
			}
		}
	}
	return out
}

// Groups a sample can fall in, beside the components.
const (
	groupGC      = "GC (mark workers, assists, sweep)"
	groupAlloc   = "allocation (mallocgc)"
	groupRuntime = "scheduler and runtime"
	groupOther   = "other"
)

// classify names the group of a stack, innermost frame first.
func classify(stack []string) string {
	if anyFrame(stack, gcFrames) {
		return groupGC
	}
	if anyFrame(stack, syscallFrames) {
		name, _, _ := strings.Cut(component(stack), " (") // the group's name without its detail
		return "syscalls: " + name
	}
	if anyFrame(stack, allocFrames) {
		return groupAlloc
	}
	return component(stack)
}

var (
	gcFrames = []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.gcDrain", "runtime.bgsweep",
		"runtime.bgscavenge", "runtime.gcStart", "runtime.gcMarkDone", "runtime.gcMarkTermination", "runtime.markroot"}
	syscallFrames = []string{"syscall.Syscall", "syscall.RawSyscall", "internal/runtime/syscall.", "runtime.futex",
		"runtime.epollwait", "runtime.usleep", "runtime.osyield", "runtime.write1", "runtime.read"}
	allocFrames = []string{"runtime.mallocgc", "runtime.newobject", "runtime.growslice", "runtime.makeslice"}
)

// anyFrame reports whether a frame of stack starts with one of prefixes.
func anyFrame(stack, prefixes []string) bool {
	for _, f := range stack {
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

// components are the groups frames belong to, by the prefix of their
// function name, checked in order (the first match wins: the Stripe event
// scanner is JSON before the rest of ours is the handler). Sockets (net,
// internal/poll) and bufio have none: a write is the HTTP server's or the
// NATS client's, whichever called it.
var components = []struct{ prefix, group string }{
	{"encoding/json.", "JSON"},
	{"github.com/switchyard/switchyard/platform/stripescan.", "JSON"},
	{"crypto/", "signature (HMAC-SHA256, header)"},
	{"encoding/hex.", "signature (HMAC-SHA256, header)"},
	{"github.com/switchyard/switchyard/platform/stripesig.", "signature (HMAC-SHA256, header)"},
	{"github.com/stripe/stripe-go/v76/webhook.", "signature (HMAC-SHA256, header)"},
	{"github.com/stripe/stripe-go/", "JSON"}, // the event's UnmarshalJSON methods
	{"go.opentelemetry.io/", "telemetry (metrics, tracing)"},
	{"github.com/prometheus/", "telemetry (metrics, tracing)"},
	{"github.com/switchyard/switchyard/platform/telemetry.", "telemetry (metrics, tracing)"},
	{"github.com/nats-io/", "NATS client (publish, PubAck)"},
	{"github.com/switchyard/switchyard/platform/natsbus.", "NATS client (publish, PubAck)"},
	{"net/http.", "HTTP server"},
	{"net/textproto.", "HTTP server"},
	{"net/url.", "HTTP server"},
	{"mime", "HTTP server"},
	{"github.com/switchyard/switchyard/", "handler (the rest)"},
	{"main.", "handler (the rest)"},
}

// component is the group of stack's innermost frame that has one: the
// scheduler and runtime if only the standard library's general-purpose
// packages are on it, other if code none of components names is.
func component(stack []string) string {
	foreign := false
	for _, f := range stack {
		for _, c := range components {
			if strings.HasPrefix(f, c.prefix) {
				return c.group
			}
		}
		// A module path (host.tld/…), not the standard library, whose
		// package paths have no dot before their first slash.
		if first, _, ok := strings.Cut(f, "/"); ok && strings.Contains(first, ".") {
			foreign = true
		}
	}
	if foreign {
		return groupOther
	}
	return groupRuntime
}

func report(w io.Writer, groups []Group, total, duration time.Duration, perRequest float64) error {
	if total == 0 {
		_, err := fmt.Fprintln(w, "no CPU samples")
		return err
	}
	fmt.Fprintf(w, "%.2fs of CPU sampled over %.1fs (%.2f cores)\n", total.Seconds(), duration.Seconds(), total.Seconds()/duration.Seconds())
	width := len("group")
	for _, g := range groups {
		width = max(width, len(g.Name))
	}
	if perRequest > 0 {
		fmt.Fprintf(w, "%-*s %7s %10s\n", width, "group", "share", "cpu_us/req")
	} else {
		fmt.Fprintf(w, "%-*s %7s\n", width, "group", "share")
	}
	for _, g := range groups {
		share := float64(g.CPU) / float64(total)
		if perRequest > 0 {
			fmt.Fprintf(w, "%-*s %6.1f%% %10.1f\n", width, g.Name, 100*share, share*perRequest)
		} else {
			fmt.Fprintf(w, "%-*s %6.1f%%\n", width, g.Name, 100*share)
		}
	}
	return nil
}
