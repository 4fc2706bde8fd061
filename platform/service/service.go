// Package service is the start-up every Switchyard service shares: a JSON
// logger tagged with the service, OpenTelemetry providers, and a stack of
// closers that runs in reverse when Run returns (intake first, telemetry
// last; see package lifecycle).
package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/platform/lifecycle"
	"github.com/switchyard/switchyard/platform/logging"
	"github.com/switchyard/switchyard/platform/telemetry"
)

// closeTimeout bounds the closers run at exit.
const closeTimeout = 10 * time.Second

// Base is a started service's shared parts.
type Base struct {
	Log   *slog.Logger
	Tel   *telemetry.Telemetry
	Stack lifecycle.Stack

	name string        // the service's, for its PostgreSQL connections
	nc   *nats.Conn    // set by NATS, for readiness
	pool *pgxpool.Pool // set by Postgres, for readiness
	// checks are the service's own readiness conditions (ReadyWhen).
	checks []func(context.Context) error
}

// Start builds the logger (service name, LOG_LEVEL value level) and the
// telemetry providers ("switchyard-<name>" unless OTEL_SERVICE_NAME says
// otherwise); telemetry is the first closer pushed, so it flushes last.
func Start(ctx context.Context, name, level string, getenv func(string) string, stdout io.Writer) (*Base, error) {
	b := &Base{Log: logging.New(stdout, name, logging.ParseLevel(level)), name: name}
	tel, err := telemetry.Setup(ctx, "switchyard-"+name, getenv)
	if err != nil {
		return nil, err
	}
	b.Tel = tel
	b.Stack.Push("telemetry", tel.Shutdown)
	return b, nil
}

// Close runs the closers (at most closeTimeout) and joins their errors into
// *err; call it deferred from Run with Run's named error.
func (b *Base) Close(ctx context.Context, err *error) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	*err = errors.Join(*err, b.Stack.Close(sctx))
}
