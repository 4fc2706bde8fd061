// Package natsembed runs a NATS server with JetStream inside the process, for
// `switchyard dev` and for tests. Production runs a real cluster instead.
package natsembed

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures the embedded server.
type Options struct {
	Host     string // default 127.0.0.1
	Port     int    // 0 or -1 = a random free port
	StoreDir string // JetStream file storage; required
}

// Start runs a server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, fmt.Errorf("natsembed: StoreDir is required")
	}
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		Host:      host,
		Port:      port,
		JetStream: true,
		StoreDir:  o.StoreDir,
		NoLog:     true,
		NoSigs:    true,
		// Deliberately small limits keep tests light; dev data is tiny.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  8 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d not ready within 10s", host, port)
	}
	return s, nil
}
