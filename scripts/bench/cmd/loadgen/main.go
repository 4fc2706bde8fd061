// Command loadgen drives a Stripe webhook endpoint, or JetStream directly,
// from its own process and reports throughput and latency percentiles.
//
// Modes:
//
//	-mode http -url U -rate R -duration D       open loop at R requests/s
//	-mode http -url U -concurrency N -duration D closed loop, N clients
//	-mode jetstream -nats U -concurrency N [-rate R] -duration D
//
// The open loop schedules request i at t0 + i/R and measures latency from
// that intended time, so when the target falls behind, queueing inside the
// generator shows up as latency instead of silently lowering the offered
// rate (no coordinated omission). The closed loop measures the maximum
// throughput N clients reach. Every HTTP request carries a real Stripe event
// body with a unique event id and a fresh Stripe-Signature.
//
// -fixture is a comma-separated list of event files and directories; a
// directory stands for every *.json in it but MANIFEST.json and
// signatures.json, sorted by name. Request i uses event i mod n, so a run
// sends a deterministic round-robin mix of event types and sizes; the report
// gives n (fixtures=) and the mean body size in bytes (mean_body=).
//
// Only loopback targets are accepted, and every run is bounded in time and
// in number of requests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/scripts/bench/internal/stripefixture"
)

// defaultFixture is the in-repo directory of assembled Stripe event
// envelopes (1–5 KB each), relative to the repository root.
const defaultFixture = "platform/devkit/testkit/fixtures/stripe/events"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// config is the validated command line.
type config struct {
	mode        string
	url         string
	natsURL     string
	secret      string
	fixture     string
	label       string
	rate        float64
	duration    time.Duration
	concurrency int
	timeout     time.Duration
	drain       time.Duration
	maxRequests int
	json        bool
}

const (
	maxDuration         = 10 * time.Minute
	defaultClosedConc   = 64
	defaultOpenHTTPPool = 1024
)

func parseConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&c.mode, "mode", "http", "http or jetstream")
	fs.StringVar(&c.url, "url", "http://127.0.0.1:18080/webhooks/stripe", "webhook URL (http mode, loopback only)")
	fs.StringVar(&c.natsURL, "nats", "nats://127.0.0.1:4222", "NATS URL (jetstream mode, loopback only)")
	fs.StringVar(&c.secret, "secret", getenv("STRIPE_WEBHOOK_SECRET"), "whsec_ signing secret (http mode; env STRIPE_WEBHOOK_SECRET)")
	fs.StringVar(&c.fixture, "fixture", defaultFixture, "comma-separated Stripe event JSON files and directories (each *.json but MANIFEST.json, signatures.json), sent round-robin")
	fs.StringVar(&c.label, "target", "", "label for the report (default: the mode)")
	fs.Float64Var(&c.rate, "rate", 0, "offered requests/s; 0 runs a closed loop at saturation")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to offer load")
	fs.IntVar(&c.concurrency, "concurrency", 0, "closed loop: clients (default 64); open loop: sending pool size (default 1024 for http, 64 for jetstream)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-request timeout, counted as an error")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "open loop: how long to wait for queued requests after the schedule ends; the rest count as unsent")
	fs.IntVar(&c.maxRequests, "max-requests", 2_000_000, "upper bound on requests in one run")
	fs.BoolVar(&c.json, "json", false, "print the report as a JSON object")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.label == "" {
		c.label = c.mode
	}
	switch {
	case c.duration <= 0 || c.duration > maxDuration:
		return c, fmt.Errorf("-duration must be in (0, %s]", maxDuration)
	case c.rate < 0:
		return c, errors.New("-rate must not be negative")
	case c.rate > 0 && c.rate*c.duration.Seconds() > float64(c.maxRequests):
		return c, fmt.Errorf("-rate × -duration exceeds -max-requests %d", c.maxRequests)
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	case c.concurrency < 0:
		return c, errors.New("-concurrency must not be negative")
	}
	if c.concurrency == 0 {
		c.concurrency = defaultClosedConc
		if c.rate > 0 && c.mode == "http" {
			c.concurrency = defaultOpenHTTPPool
		}
	}
	switch c.mode {
	case "http":
		if c.secret == "" {
			return c, errors.New("-secret (or STRIPE_WEBHOOK_SECRET) is required in http mode")
		}
		if err := requireLoopbackURL(c.url); err != nil {
			return c, fmt.Errorf("-url: %w", err)
		}
	case "jetstream":
		if err := requireLoopbackURL(c.natsURL); err != nil {
			return c, fmt.Errorf("-nats: %w", err)
		}
	default:
		return c, fmt.Errorf("unknown -mode %q (want http or jetstream)", c.mode)
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	set, err := stripefixture.LoadSet(cfg.fixture)
	if err != nil {
		return err
	}
	var s sender
	switch cfg.mode {
	case "http":
		s = newHTTPSender(cfg, set)
	case "jetstream":
		var js *jetStreamSender
		js, err = newJetStreamSender(ctx, cfg, set)
		if js != nil {
			defer func() { err = errors.Join(err, js.close()) }()
		}
		s = js
	}
	if err != nil {
		return err
	}

	var res result
	if cfg.rate > 0 {
		res = openLoop(ctx, s, cfg.rate, cfg.duration, cfg.drain, cfg.concurrency)
	} else {
		res = closedLoop(ctx, s, cfg.concurrency, cfg.duration, cfg.maxRequests)
	}
	rep := newReport(cfg, set, res)
	if cfg.json {
		enc := json.NewEncoder(stdout)
		return enc.Encode(rep)
	}
	_, err = fmt.Fprintln(stdout, rep.line())
	return err
}
