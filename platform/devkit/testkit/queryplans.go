package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/postgres"
)

// TracedPool opens a pool on url (closed when the test ends) whose
// statements are kept in the Statements it returns.
func TracedPool(t testing.TB, url string) (*pgxpool.Pool, *Statements) {
	t.Helper()
	stmts := &Statements{}
	pool, err := postgres.Open(context.Background(), url, stmts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, stmts
}

// Statements is a pgx tracer (postgres.Open's tracer argument) that keeps
// every statement sent, alone or in a batch, with its arguments, so a test
// can ask PostgreSQL how it runs them (SeqScans). Safe for concurrent use.
type Statements struct {
	mu   sync.Mutex
	list []Statement
}

// Statement is one statement as sent.
type Statement struct {
	SQL  string
	Args []any
}

// Take returns the statements recorded so far and forgets them.
func (s *Statements) Take() []Statement {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.list
	s.list = nil
	return out
}

func (s *Statements) add(sql string, args []any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, Statement{SQL: sql, Args: args})
}

// TraceQueryStart records a statement sent on its own.
func (s *Statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.add(d.SQL, d.Args)
	return ctx
}

// TraceQueryEnd is part of pgx.QueryTracer.
func (s *Statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart is part of pgx.BatchTracer.
func (s *Statements) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

// TraceBatchQuery records a statement of a batch.
func (s *Statements) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	s.add(d.SQL, d.Args)
}

// TraceBatchEnd is part of pgx.BatchTracer.
func (s *Statements) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// SeqScans asks PostgreSQL (EXPLAIN, which runs nothing) for the plans of
// each statement that reads or writes rows — SELECT, INSERT, UPDATE,
// DELETE, WITH — and returns one line for each plan that reads any of
// tables (names as written in the SQL's FROM, without schema) with a
// sequential scan. Two plans each: the one made for the recorded
// arguments, and the generic one PostgreSQL settles on for a prepared
// statement (pgx prepares and caches every statement sent in its default
// mode) after a few executions and then keeps for the connection's life.
// On a store holding history and ANALYZEd, such a statement costs time in
// proportion to the history: the regression a hot path must not have. Run
// it with a pool opened without the tracer.
func SeqScans(ctx context.Context, pool *pgxpool.Pool, stmts []Statement, tables ...string) ([]string, error) {
	watch := map[string]bool{}
	for _, t := range tables {
		watch[t] = true
	}
	var found []string
	seen := map[string]bool{}
	for _, st := range stmts {
		verb := strings.ToUpper(strings.Fields(strings.TrimSpace(st.SQL) + " x")[0])
		switch verb {
		case "SELECT", "INSERT", "UPDATE", "DELETE", "WITH":
		default:
			continue
		}
		for _, generic := range []bool{false, true} {
			if generic && !prepared(st) {
				continue // planned at every execution: its generic plan never runs
			}
			doc, err := explain(ctx, pool, st, generic)
			if err != nil {
				return nil, fmt.Errorf("explain %q: %w", oneLine(st.SQL), err)
			}
			var plans []struct{ Plan planNode }
			if err := json.Unmarshal(doc, &plans); err != nil {
				return nil, fmt.Errorf("explain %q: %w", oneLine(st.SQL), err)
			}
			for _, p := range plans {
				for _, rel := range p.Plan.seqScans() {
					line := "Seq Scan on " + rel + ": " + oneLine(st.SQL)
					if generic {
						line = "Seq Scan on " + rel + " (generic plan): " + oneLine(st.SQL)
					}
					if watch[rel] && !seen[line] {
						seen[line] = true
						found = append(found, line)
					}
				}
			}
		}
	}
	return found, nil
}

// prepared reports whether pgx sends st as a named prepared statement,
// whose generic plan PostgreSQL may keep: the default mode, unless the
// statement was sent with another pgx.QueryExecMode.
func prepared(st Statement) bool {
	for _, a := range st.Args {
		if mode, ok := a.(pgx.QueryExecMode); ok {
			return mode == pgx.QueryExecModeCacheStatement
		}
	}
	return true
}

// explain returns EXPLAIN's JSON for st: the plan for its arguments, or
// with generic the generic plan of st prepared (PREPARE and EXPLAIN
// EXECUTE under plan_cache_mode force_generic_plan, on one connection,
// in a transaction rolled back; the prepared statement, which outlives
// transactions, is deallocated after).
func explain(ctx context.Context, pool *pgxpool.Pool, st Statement, generic bool) ([]byte, error) {
	var doc []byte
	if !generic {
		err := pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+st.SQL, st.Args...).Scan(&doc)
		return doc, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	if _, err := tx.Exec(ctx, "PREPARE testkit_generic AS "+st.SQL); err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	// A generic plan is made without the arguments, so any will do: NULL
	// for each (EXPLAIN EXECUTE, a utility statement, takes no bound
	// parameters).
	n := 0
	for _, a := range st.Args {
		if _, mode := a.(pgx.QueryExecMode); !mode { // an option to pgx, not a parameter
			n++
		}
	}
	q := "EXPLAIN (FORMAT JSON) EXECUTE testkit_generic"
	if n > 0 {
		q += "(" + strings.TrimSuffix(strings.Repeat("NULL, ", n), ", ") + ")"
	}
	err = tx.QueryRow(ctx, q).Scan(&doc)
	if rerr := tx.Rollback(ctx); err == nil {
		err = rerr
	}
	if _, derr := conn.Exec(ctx, "DEALLOCATE testkit_generic"); err == nil {
		err = derr
	}
	return doc, err
}

// planNode is the part of EXPLAIN's JSON that SeqScans reads.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Plans    []planNode `json:"Plans"`
}

func (n planNode) seqScans() []string {
	var out []string
	if n.NodeType == "Seq Scan" {
		out = append(out, n.Relation)
	}
	for _, c := range n.Plans {
		out = append(out, c.seqScans()...)
	}
	return out
}

func oneLine(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
