package testkit

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// RoundTrips is a pgx tracer (postgres.Open's tracer argument) that counts
// the round trips asked of PostgreSQL: each statement sent on its own, and
// each batch (a pipeline: one round trip however many statements it holds).
// It counts the statements too, those sent alone and each one in a batch:
// each costs PostgreSQL and the client a parse/bind/execute of its own
// even where it shares a round trip. Tests pin a code path's cost with it.
// Safe for concurrent use.
type RoundTrips struct{ n, statements atomic.Int64 }

// Count is the number of round trips so far.
func (r *RoundTrips) Count() int64 { return r.n.Load() }

// Statements is the number of statements so far, alone or in a batch.
func (r *RoundTrips) Statements() int64 { return r.statements.Load() }

// TraceQueryStart counts a statement sent on its own.
func (r *RoundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	r.statements.Add(1)
	return ctx
}

// TraceQueryEnd is part of pgx.QueryTracer.
func (r *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart counts a batch as one round trip.
func (r *RoundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}

// TraceBatchQuery counts a statement of a batch.
func (r *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	r.statements.Add(1)
}

// TraceBatchEnd is part of pgx.BatchTracer.
func (r *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
