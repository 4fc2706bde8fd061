// Command natsd runs a standalone NATS server with JetStream on file storage.
//
// The benchmark starts it as its own process so every target (the raw
// JetStream ceiling, the textbook handler and the gateway) publishes to the
// same broker, configured the same way, outside the process being measured.
// It prints one "natsd ready" line on stdout once it accepts connections and
// shuts down cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1", "listen host")
	port := fs.Int("port", 4222, "listen port")
	store := fs.String("store", "", "JetStream store directory (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *store == "" {
		return errors.New("-store is required")
	}

	opts := &server.Options{
		ServerName: "switchyard-bench",
		Host:       *addr,
		Port:       *port,
		JetStream:  true,
		StoreDir:   *store,
		NoSigs:     true, // signals are handled here, so shutdown is orderly
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("new server: %w", err)
	}
	// Notices go to stderr; a listen failure is fatal there instead of a
	// silent wait for readiness.
	srv.ConfigureLogger()
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("server not ready for connections within 10s")
	}
	fmt.Fprintf(stdout, "natsd ready url=%s store=%s\n", srv.ClientURL(), *store)

	<-ctx.Done()
	srv.Shutdown()
	srv.WaitForShutdown()
	return nil
}
