package service

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/platform/telemetry"
)

// Postgres opens the pool at url (closed after the service's other parts),
// its connections named switchyard-<name> unless url names them, and migrates the done-effects ledger every consuming service keeps.
func (b *Base) Postgres(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := postgres.OpenAs(ctx, url, "switchyard-"+b.name, postgres.Tracer(b.Tel.Tracer))
	if err != nil {
		return nil, err
	}
	b.Stack.Push("postgres", func(context.Context) error { pool.Close(); return nil })
	if err := ledger.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	b.pool = pool
	return pool, nil
}

// NATS connects with o (logging through the service's logger), drains the
// connection on close, and checks that the hub's streams and the named
// durable consumers (the service's own) exist as natsbus's catalogue says
// (natsbus.Check). It creates and changes nothing — that is `switchyard
// migrate`'s job — and returns an error saying to run it when something is
// missing or incompatible; stream settings that differ from what o's
// environment asks for are logged as warnings, not applied.
func (b *Base) NATS(ctx context.Context, o natsbus.Options, consumers ...string) (*nats.Conn, jetstream.JetStream, error) {
	o.Logger = b.Log
	nc, err := natsbus.Connect(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	b.Stack.Push("nats", func(context.Context) error { return nc.Drain() })
	// An asynchronous publish whose PubAck never comes (natsbus.PublishProtoAsync)
	// fails after this long instead of staying pending.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishAsyncTimeout))
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	drift, err := natsbus.Check(ctx, js, o, consumers...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: %w", err)
	}
	for _, d := range drift {
		b.Log.WarnContext(ctx, "jetstream settings differ", "difference", d)
	}
	b.nc = nc
	return nc, js, nil
}

// publishAsyncTimeout bounds the wait for an asynchronous publish's PubAck.
const publishAsyncTimeout = 30 * time.Second

// VendorClient returns the http.Client a service calls a vendor's API
// with (peer names it in traces, see telemetry.HTTPClient): requests time
// out after timeout, and up to conns connections to the vendor stay open
// between requests. net/http keeps 2 by default, so against a server that
// speaks HTTP/1.1 (the emulators, a proxy in between) a service with more
// requests in flight closed the rest after each answer and dialled anew
// for the next: support, 32 at once, spent a tenth of its CPU dialling the
// Zendesk emulator. (Over HTTP/2 the requests share a connection.)
func (b *Base) VendorClient(peer string, timeout time.Duration, conns int) *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = max(conns, 2)
	t.MaxIdleConns = max(t.MaxIdleConns, t.MaxIdleConnsPerHost)
	return telemetry.HTTPClient(b.Tel.Tracer, &http.Client{Timeout: timeout, Transport: t}, peer)
}
