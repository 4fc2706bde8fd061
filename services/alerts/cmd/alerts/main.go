// Command alerts runs Switchyard's alerting service (see docs/configuration.md for its
// environment); `alerts -healthcheck` probes a running instance.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/alerts"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz on ALERTS_ADDR (default :8084) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		addr := os.Getenv("ALERTS_ADDR")
		if addr == "" {
			addr = ":8084"
		}
		os.Exit(lifecycle.Healthcheck(addr))
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := alerts.Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "alerts:", err)
		os.Exit(1)
	}
}
