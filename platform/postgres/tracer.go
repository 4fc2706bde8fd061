package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracer returns a pgx tracer that makes each query, pipelined batch and
// COPY a client span
// (database semantic conventions: db.system.name, db.operation.name, the
// query text — parameterised, so it holds no values — cut to 500 bytes,
// db.response.returned_rows). Queries outside any span (start-up,
// migrations) start no trace of their own.
func Tracer(tp trace.TracerProvider) pgx.QueryTracer {
	return &tracer{t: tp.Tracer("github.com/switchyard/switchyard/platform/postgres")}
}

type tracer struct{ t trace.Tracer }

var (
	_ pgx.QueryTracer    = (*tracer)(nil)
	_ pgx.BatchTracer    = (*tracer)(nil)
	_ pgx.CopyFromTracer = (*tracer)(nil)
)

func operation(sql string) string {
	f := strings.Fields(sql)
	if len(f) == 0 {
		return "query"
	}
	op := strings.ToUpper(f[0])
	if op == "WITH" {
		return "WITH"
	}
	return op
}

func (t *tracer) start(ctx context.Context, name string, attrs ...attribute.KeyValue) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	ctx, _ = t.t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append([]attribute.KeyValue{attribute.String("db.system.name", "postgresql")}, attrs...)...))
	return ctx
}

func end(ctx context.Context, err error, rows int64) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "query failed")
	} else if rows >= 0 {
		span.SetAttributes(attribute.Int64("db.response.returned_rows", rows))
	}
	span.End()
}

// TraceQueryStart implements pgx.QueryTracer.
func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	op := operation(d.SQL)
	q := d.SQL
	if len(q) > 500 {
		q = q[:500]
	}
	return t.start(ctx, op+" postgresql", attribute.String("db.operation.name", op), attribute.String("db.query.text", strings.Join(strings.Fields(q), " ")))
}

// TraceQueryEnd implements pgx.QueryTracer.
func (t *tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	end(ctx, d.Err, d.CommandTag.RowsAffected())
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (t *tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	return t.start(ctx, "COPY "+d.TableName.Sanitize(), attribute.String("db.operation.name", "COPY"), attribute.String("db.collection.name", d.TableName.Sanitize()))
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (t *tracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromEndData) {
	end(ctx, d.Err, d.CommandTag.RowsAffected())
}

// TraceBatchStart implements pgx.BatchTracer: a pipelined batch (one round
// trip, several statements: identity's resolution, the ledger's claim) is
// one span, "BATCH postgresql", with the statements' operations in order
// (db.operation.name "BATCH", db.operation.batch.size, and
// switchyard.db.operations, e.g. "BEGIN SELECT SELECT").
func (t *tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	var ops []string
	if d.Batch != nil {
		for _, q := range d.Batch.QueuedQueries {
			ops = append(ops, operation(q.SQL))
		}
	}
	return t.start(ctx, "BATCH postgresql", attribute.String("db.operation.name", "BATCH"),
		attribute.Int("db.operation.batch.size", len(ops)), attribute.String("switchyard.db.operations", strings.Join(ops, " ")))
}

// TraceBatchQuery implements pgx.BatchTracer: a failed statement marks the
// batch's span.
func (t *tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if d.Err == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.RecordError(d.Err)
	}
}

// TraceBatchEnd implements pgx.BatchTracer.
func (t *tracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchEndData) {
	end(ctx, d.Err, -1)
}
