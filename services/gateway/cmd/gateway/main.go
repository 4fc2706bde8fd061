// Command gateway runs Switchyard's Stripe webhook intake. See docs/configuration.md for
// its environment; `gateway -healthcheck` probes a running instance (for
// container health checks in images without a shell).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/gateway"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz of the gateway on GATEWAY_ADDR (default :8080) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		os.Exit(lifecycle.Healthcheck(orDefault(os.Getenv("GATEWAY_ADDR"), ":8080")))
	}
	// GOGC: unset, the gateway sets 400 (Go's default is 100) because its live heap is tiny.
	if os.Getenv("GOGC") == "" {
		// The live heap is a few MB while garbage flows at tens of MB/s under
		// load, so the default GOGC=100 collects hundreds of times a second.
		// Trading a few more MB for fewer collections lowers CPU and tail
		// latency; GOGC still overrides this.
		debug.SetGCPercent(400)
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := gateway.Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
