// Command soak runs the whole hub as a user does (`switchyard dev`, a child
// process on a fresh data folder) for a long time under realistic load, and
// checks that it neither leaks nor loses nor doubles anything (issue 14,
// point 7; `make soak`, not CI):
//
//   - load: -rate signed Stripe webhooks a second (default 300), customers'
//     lifecycles in Stripe's order (customer.created with an email, the
//     subscription, invoice.paid, and for some a failed payment, a refund,
//     a cancellation, a dispute), a second or more apart per customer;
//     -duplicates of the deliveries (default 1 %) are posted again a second
//     later, as Stripe does; a refused or lost delivery is retried;
//   - vendors: HubSpot, Zendesk and Slack emulators run in this process,
//     without rate limits, failing -vendor-errors of the requests (default
//     10 %) with their retryable errors (HubSpot 502/503/429, Zendesk
//     500/502/503/429, Slack 429/500). They run here, not in dev, because
//     they keep every contact and ticket in memory: in the hub's process
//     they would grow its RSS by design and hide a leak of its own;
//   - every -interval (default 1m) one line: deliveries a second achieved,
//     the hub process's RSS, the broker's (a process of its own unless
//     -broker embedded) and its PostgreSQL's PSS, the consumer lag p99
//     over the interval (messages pending or unacknowledged on the worst
//     durable, sampled every 5 s), dead letters so far; RSS more than
//     -rss-growth (20 %) above the first interval's is flagged;
//   - at the end: the sending stops, the hub drains (the backlog, then the
//     few messages whose vendor call failed four times in a row, which wait
//     the consumers' last backoff, 10 minutes), and the exactly-once
//     counts are printed: Stripe events stored against distinct events
//     sent, HubSpot contacts against customers, Zendesk tickets against
//     failed payments (and refunds, cancellations, disputes), duplicate
//     effects (0), dead letters (0: every injected error is retryable).
//
// It exits non-zero if any count is off, a delivery was never accepted or
// RSS grew too much. The hub is one process: the services share its RSS;
// per-service figures need the services run as separate processes.
//
// Run it from the repository root (it builds ./services/switchyard unless
// -switchyard names a binary). Every port is a free loopback one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/switchyard/switchyard/platform/lifecycle"
)

func main() {
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// config is the validated command line.
type config struct {
	duration     time.Duration
	rate         float64
	duplicates   float64
	vendorErrors float64
	interval     time.Duration
	rssGrowth    float64
	drain        time.Duration
	dataDir      string
	switchyard   string
	fixtures     string
	workers      int
	broker       string
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.duration, "duration", 30*time.Minute, "how long to offer load")
	fs.Float64Var(&c.rate, "rate", 300, "webhook deliveries offered a second (duplicates included)")
	fs.Float64Var(&c.duplicates, "duplicates", 0.01, "share of deliveries posted a second time")
	fs.Float64Var(&c.vendorErrors, "vendor-errors", 0.1, "share of vendor requests failed with a retryable error")
	fs.DurationVar(&c.interval, "interval", time.Minute, "how often to print a line")
	fs.Float64Var(&c.rssGrowth, "rss-growth", 0.2, "RSS growth over the first interval's that fails the soak")
	fs.DurationVar(&c.drain, "drain", 30*time.Minute, "how long the hub may take to drain after the load (a message unlucky four times waits CONSUMER_BACKOFF's 10 minutes)")
	fs.StringVar(&c.dataDir, "data", "", "the hub's data folder, which must not exist yet (default: a new temporary one, removed after a passing run)")
	fs.StringVar(&c.switchyard, "switchyard", "", "switchyard binary to run (default: go build ./services/switchyard)")
	fs.StringVar(&c.fixtures, "fixtures", "platform/devkit/testkit/fixtures/stripe/events", "folder of the Stripe event fixtures the lifecycles are made from")
	fs.IntVar(&c.workers, "workers", 64, "concurrent webhook posts at most")
	fs.StringVar(&c.broker, "broker", "separate", "separate: the hub on NATS_URL, a JetStream server of its own process (scripts/bench/cmd/natsd), so the services' RSS is theirs alone; embedded: dev's own NATS in the hub's process, as `make run`")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.rate <= 0:
		return c, errors.New("-rate must be positive")
	case c.duplicates < 0 || c.duplicates >= 1:
		return c, errors.New("-duplicates must be in [0, 1)")
	case c.vendorErrors < 0 || c.vendorErrors >= 1:
		return c, errors.New("-vendor-errors must be in [0, 1)")
	case c.interval <= 0:
		return c, errors.New("-interval must be positive")
	case c.workers <= 0:
		return c, errors.New("-workers must be positive")
	case c.broker != "separate" && c.broker != "embedded":
		return c, fmt.Errorf("-broker %q: want separate or embedded", c.broker)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	gen, err := newLifecycles(cfg.fixtures, randomTag())
	if err != nil {
		return err
	}
	vendors, err := startVendors(cfg.vendorErrors)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, vendors.close()) }()

	h, err := startHub(ctx, cfg, vendors, stdout)
	if err != nil {
		return err
	}
	passed := false
	defer func() { err = errors.Join(err, h.stop(passed, stdout)) }()

	fmt.Fprintf(stdout, "soak: %s at %.0f deliveries/s (%.0f %% duplicates), %.0f %% vendor errors; hub pid %d, data %s, log %s\n",
		cfg.duration, cfg.rate, 100*cfg.duplicates, 100*cfg.vendorErrors, h.pid(), h.dataDir, h.logPath)
	w, err := newWatcher(h)
	if err != nil {
		return err
	}
	defer w.close()

	load := newLoad(cfg, gen, h.webhookURL, h.secret)
	loadStart := time.Now()
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); load.run(ctx) }()
	w.report(ctx, stdout, load, loadDone, cfg.interval, cfg.rssGrowth)
	<-loadDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintf(stdout, "soak: load done: %s; draining\n", load.summary())
	c, err := w.drain(ctx, stdout, load.expected(), vendors, cfg.drain)
	if err != nil {
		return err
	}
	c.rssProblem = w.rssProblem
	c.print(stdout)
	if c.drained {
		took := time.Since(loadStart)
		fmt.Fprintf(stdout, "soak: end to end, %d Stripe events in %s of load and drain: %.0f events/s sustained\n",
			c.exp.events, took.Round(time.Second), float64(c.exp.events)/took.Seconds())
	}
	if problems := c.problems(); len(problems) > 0 {
		return fmt.Errorf("soak failed: %v", problems)
	}
	passed = true
	fmt.Fprintln(stdout, "soak: passed")
	return nil
}
