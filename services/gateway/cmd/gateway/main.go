// Command gateway runs Switchyard's Stripe webhook intake. See the README for
// its environment; `gateway -healthcheck` probes a running instance (for
// container health checks in images without a shell).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/services/gateway"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz of the gateway on GATEWAY_ADDR (default :8080) and exit 0 if healthy")
	flag.Parse()
	if *healthcheck {
		os.Exit(probe(os.Getenv("GATEWAY_ADDR")))
	}
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

// probe checks the local instance listening on addr (host:port, host may be empty).
func probe(addr string) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "", "8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
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
