// Package testkit gives tests real infrastructure: an embedded JetStream
// server per test (migrated like `switchyard migrate` does, or empty) and
// a fresh PostgreSQL database per test.
//
// PostgreSQL comes from DATABASE_URL, else 127.0.0.1:5432, else a private
// cluster started from the machine's PostgreSQL binaries. Nothing skips: when
// no database can be had the test fails and says how to provide one.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/devkit/natsembed"
	"github.com/switchyard/switchyard/platform/devkit/pgcluster"
	"github.com/switchyard/switchyard/platform/natsbus"
)

// Broker is an embedded JetStream server owned by one test.
type Broker struct {
	t        testing.TB
	Server   *server.Server
	URL      string
	Port     int
	StoreDir string
}

// NATS starts an embedded JetStream server on a random port, migrated as
// `switchyard migrate` would with the default settings (every stream and
// durable consumer of natsbus's catalogue), so a service started on it
// finds what it checks for; it is shut down when the test ends.
func NATS(t testing.TB) *Broker {
	t.Helper()
	b := EmptyNATS(t)
	_, js := b.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := natsbus.Migrate(ctx, js, natsbus.Options{}); err != nil {
		t.Fatalf("testkit: migrate embedded NATS: %v", err)
	}
	return b
}

// EmptyNATS is NATS without the migration: a server with no streams or
// consumers, for tests of migrating itself and of what a service does
// when nobody migrated.
func EmptyNATS(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{t: t, StoreDir: t.TempDir()}
	b.start(0)
	t.Cleanup(b.Shutdown)
	return b
}

func (b *Broker) start(port int) {
	b.t.Helper()
	s, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: b.StoreDir})
	if err != nil {
		b.t.Fatalf("testkit: start embedded NATS: %v", err)
	}
	b.Server = s
	b.Port = s.Addr().(*net.TCPAddr).Port
	b.URL = s.ClientURL()
}

// Shutdown stops the server (for outage tests); Restart brings it back on the
// same port with the same store.
func (b *Broker) Shutdown() {
	if b.Server != nil {
		b.Server.Shutdown()
		b.Server.WaitForShutdown()
		b.Server = nil
	}
}

// Restart starts the server again on its old port and store directory.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Shutdown()
	b.start(b.Port)
}

// Connect returns a client connection and its JetStream context, closed when
// the test ends.
func (b *Broker) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(b.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("testkit: connect NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testkit: jetstream: %v", err)
	}
	return nc, js
}

var (
	pgOnce sync.Once
	pgBase string
	pgErr  error
)

// Postgres creates a fresh, empty database for the test and returns its URL.
// The database is dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() { pgBase, pgErr = baseURL() })
	if pgErr != nil {
		t.Fatalf("testkit: no PostgreSQL for tests: %v\nProvide one: set DATABASE_URL=postgres://user@host:port/db, start the local server "+
			"(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), or install PostgreSQL server binaries.", pgErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, pgBase)
	if err != nil {
		t.Fatalf("testkit: connect PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	name := "switchyard_test_" + randomHex(6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testkit: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgBase)
		if err != nil {
			t.Errorf("testkit: drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testkit: drop database %s: %v", name, err)
		}
	})
	cfg, err := pgx.ParseConfig(pgBase)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", userInfo(cfg), net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), name)
}

func userInfo(cfg *pgx.ConnConfig) string {
	if cfg.Password != "" {
		return cfg.User + ":" + cfg.Password
	}
	return cfg.User
}

// baseURL finds a server: DATABASE_URL, the machine's server, or a private one.
func baseURL() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if u := os.Getenv("DATABASE_URL"); u != "" {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			return "", fmt.Errorf("DATABASE_URL is set but unreachable: %w", err)
		}
		_ = c.Close(ctx)
		return u, nil
	}
	local := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if c, err := pgx.Connect(ctx, local); err == nil {
		_ = c.Close(ctx)
		return local, nil
	}
	return privateCluster(ctx)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitFor polls cond every 10 ms until it holds, failing the test with what
// after timeout. Tests wait for conditions this way, never by sleeping.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Never polls cond every 10 ms for the whole of d and fails the test if it
// ever holds: for asserting that something (a redelivery) does not happen.
func Never(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("%s happened", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FreeAddr returns a 127.0.0.1:port nothing listens on, outside the kernel's
// ephemeral range so an outgoing connection cannot take it before the
// service under test binds it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePorts(t, 1)[0])
}

// FreePorts returns n distinct free ports (see FreeAddr).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	seen := map[int]bool{}
	for len(ports) < n {
		p, err := pgcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports
}
