// Command crm runs Switchyard's CRM sync service (see docs/configuration.md for its
// environment); `crm -healthcheck` probes a running instance.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/crm"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz on CRM_ADDR (default :8082) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		addr := os.Getenv("CRM_ADDR")
		if addr == "" {
			addr = ":8082"
		}
		os.Exit(lifecycle.Healthcheck(addr))
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := crm.Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "crm:", err)
		os.Exit(1)
	}
}
