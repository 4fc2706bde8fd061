// Command identity runs Switchyard's identity service (see docs/configuration.md for
// its environment); `identity -healthcheck` probes a running instance.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/identity"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz on IDENTITY_ADDR (default :8081) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		addr := os.Getenv("IDENTITY_ADDR")
		if addr == "" {
			addr = ":8081"
		}
		os.Exit(lifecycle.Healthcheck(addr))
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := identity.Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "identity:", err)
		os.Exit(1)
	}
}
