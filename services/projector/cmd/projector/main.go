// Command projector runs Switchyard's projector: the customer view and the
// status API (see docs/configuration.md for its environment); `projector
// -healthcheck` probes a running instance, and `projector rebuild --direct`
// and `projector dlq replay|discard --direct` act from this process when
// no projector is running (`projector help`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/projector"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz on PROJECTOR_ADDR (default :8085) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		addr := os.Getenv("PROJECTOR_ADDR")
		if addr == "" {
			addr = ":8085"
		}
		os.Exit(lifecycle.Healthcheck(addr))
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if flag.NArg() > 0 {
		err := projector.Command(ctx, flag.Args(), os.Getenv, os.Stdout, os.Stderr)
		switch {
		case errors.Is(err, projector.ErrUsage):
			stop()
			os.Exit(2)
		case err != nil:
			fmt.Fprintln(os.Stderr, "projector:", err)
			stop()
			os.Exit(1)
		}
		return
	}
	if err := projector.Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "projector:", err)
		os.Exit(1)
	}
}
