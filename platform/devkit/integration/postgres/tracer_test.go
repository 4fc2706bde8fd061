package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard/switchyard/platform/devkit/testkit"
	"github.com/switchyard/switchyard/platform/postgres"
)

func TestTracerSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	pool, err := postgres.Open(context.Background(), testkit.Postgres(t), postgres.Tracer(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans for queries outside any span, want 0", n)
	}
	ctx, parent := tp.Tracer("t").Start(context.Background(), "handle")
	if _, err := pool.Exec(ctx, "INSERT INTO t VALUES ($1), ($2)", 1, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"id"}, pgx.CopyFromRows([][]any{{3}})); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("INSERT INTO t VALUES ($1)", 4)
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	parent.End()
	for _, s := range rec.Ended() {
		if s.Name() != "BATCH postgresql" {
			continue
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs["db.operation.batch.size"] != "2" || attrs["switchyard.db.operations"] != "SELECT INSERT" {
			t.Errorf("batch span attributes %v, want a batch of 2: SELECT INSERT", attrs)
		}
	}
	names := map[string]bool{}
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == parent.SpanContext().SpanID() {
			names[s.Name()] = true
		}
	}
	if !names["INSERT postgresql"] || !names[`COPY "t"`] || !names["BATCH postgresql"] {
		t.Fatalf("child spans %v, want INSERT postgresql, COPY \"t\" and BATCH postgresql", names)
	}
}
