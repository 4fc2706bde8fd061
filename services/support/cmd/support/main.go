// Command support runs Switchyard's support automation service (see docs/configuration.md for its
// environment); `support -healthcheck` probes a running instance.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/support"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz on SUPPORT_ADDR (default :8083) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		addr := os.Getenv("SUPPORT_ADDR")
		if addr == "" {
			addr = ":8083"
		}
		os.Exit(lifecycle.Healthcheck(addr))
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := support.Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "support:", err)
		os.Exit(1)
	}
}
