// Command gateway runs Switchyard's Stripe webhook intake. See the README for
// its environment; `gateway -healthcheck` probes a running instance (for
// container health checks in images without a shell).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/gateway"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz on GATEWAY_HEALTH_URL (default http://127.0.0.1:8080/healthz) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		os.Exit(probe(os.Getenv("GATEWAY_HEALTH_URL")))
	}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := gateway.Run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func probe(url string) int {
	if url == "" {
		url = "http://127.0.0.1:8080/healthz"
	}
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
