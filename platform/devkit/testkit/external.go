package testkit

import (
	"os"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ExternalNATS connects to the separate-process NATS server named by
// NATS_TEST_URL (default nats://127.0.0.1:4222), so services are also proven
// against a server they do not embed (on this machine, Debian's older 2.9).
// The server is shared: tests must use unique ids and never assume counts.
func ExternalNATS(t testing.TB) (string, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	// NATS_TEST_URL: the separate NATS server the tests also run against (default nats://127.0.0.1:4222)
	url := os.Getenv("NATS_TEST_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("testkit: the separate NATS server at %s is unreachable: %v\nStart it: start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server (or set NATS_TEST_URL)", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return url, nc, js
}
