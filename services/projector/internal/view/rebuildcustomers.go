package view

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/emailaddr"
)

// history is one customer's entries and those of the customers merged
// into it: what Fold needs.
type history struct {
	owner   string
	entries []Entry
}

// loadCustomers stores the aliases the merges make, then folds every
// customer from the rebuilt events table, one customer's history at a time,
// and bulk-loads the views; it counts the customers in rep. The events
// table must be indexed (events_customer) and analyzed.
func loadCustomers(ctx context.Context, conn *pgx.Conn, pool *pgxpool.Pool, merges []merge, rep *RebuildReport) error {
	aliases := foldAliases(merges)
	aliasRows := make([][]any, 0, len(aliases))
	for m, s := range aliases {
		aliasRows = append(aliasRows, []any{m, s})
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{RebuildSchema, "aliases"}, []string{"merged_id", "survivor_id"}, pgx.CopyFromRows(aliasRows)); err != nil {
		return fmt.Errorf("rebuild: copy aliases: %w", err)
	}

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	histories := make(chan history, 64)
	readErr := make(chan error, 1)
	go func() {
		defer close(histories)
		n, err := readHistories(rctx, pool, aliases, histories)
		rep.Customers = n
		readErr <- err
	}()
	// Fold on every core while COPY sends the rows.
	type row struct {
		vals []any
		err  error
	}
	rows := make(chan row, 256)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range histories {
				v := Fold(h.owner, h.entries)
				doc, err := json.Marshal(&v)
				select {
				case rows <- row{[]any{v.CustomerID, emailaddr.Normalize(v.Email), v.StripeCustomerIDs, StateKind(v.State), v.LastEventAt, string(doc)}, err}:
				case <-rctx.Done():
				}
			}
		}()
	}
	go func() { wg.Wait(); close(rows) }()
	_, err := conn.CopyFrom(ctx, pgx.Identifier{RebuildSchema, "customers"},
		[]string{"customer_id", "email", "stripe_ids", "state", "last_event_at", "view"},
		pgx.CopyFromFunc(func() ([]any, error) {
			r, ok := <-rows
			if !ok {
				// Every history read: fail the COPY if reading them failed.
				return nil, <-readErr
			}
			return r.vals, r.err
		}))
	if err != nil {
		stop()
		for range rows {
		}
		return fmt.Errorf("rebuild: copy customers: %w", err)
	}
	return nil
}

// readHistories sends the history of every customer that is not merged
// into another, and returns how many. It reads two streams ordered by
// owner (ids compare bytewise, COLLATE "C", as Go compares strings) and
// merges them: the events of the customers not merged, in customer order
// (the events_customer index), and those of the merged ones by their
// survivor. So it holds one customer's history at a time, whatever the
// number of events.
func readHistories(ctx context.Context, pool *pgxpool.Pool, aliases map[string]string, out chan<- history) (int, error) {
	events := pgx.Identifier{RebuildSchema, "events"}.Sanitize()
	own, err := openOwned(ctx, pool, `SELECT customer_id, customer_id, event_id, subject, occurred_at, payload FROM `+events+` ORDER BY customer_id`)
	if err != nil {
		return 0, err
	}
	defer own.close()
	// Skip the merged customers' events: they come with their survivor's.
	own.skip = func(customer string) bool { _, merged := aliases[customer]; return merged }
	absorbed := &ownedRows{}
	if len(aliases) > 0 {
		absorbed, err = openOwned(ctx, pool, `SELECT a.survivor_id, e.customer_id, e.event_id, e.subject, e.occurred_at, e.payload
			FROM `+events+` e JOIN `+pgx.Identifier{RebuildSchema, "aliases"}.Sanitize()+` a ON a.merged_id = e.customer_id ORDER BY a.survivor_id`)
		if err != nil {
			return 0, err
		}
		defer absorbed.close()
	}
	if err := own.next(); err != nil {
		return 0, err
	}
	if err := absorbed.next(); err != nil {
		return 0, err
	}
	n, last := 0, ""
	for own.ok || absorbed.ok {
		owner := own.owner
		if !own.ok || absorbed.ok && absorbed.owner < owner {
			owner = absorbed.owner
		}
		if n > 0 && owner <= last {
			return n, fmt.Errorf("rebuild: events not in customer order (%q after %q)", owner, last)
		}
		h := history{owner: owner}
		for _, s := range []*ownedRows{own, absorbed} {
			for s.ok && s.owner == owner {
				h.entries = append(h.entries, s.entry)
				if err := s.next(); err != nil {
					return n, err
				}
			}
		}
		select {
		case out <- h:
		case <-ctx.Done():
			return n, ctx.Err()
		}
		n, last = n+1, owner
	}
	return n, nil
}

// ownedRows reads (owner, customer_id, event_id, subject, occurred_at,
// payload) rows in owner order on a connection of its own: what the fold
// needs, from the raw values, without the trace ids it does not.
type ownedRows struct {
	conn     *pgxpool.Conn
	rows     pgx.Rows
	skip     func(customer string) bool
	ok       bool
	owner    string
	entry    Entry
	customer string            // the last row's customer_id, which the next ones likely share
	subjects map[string]string // a few subjects, each string made once
}

func openOwned(ctx context.Context, pool *pgxpool.Pool, query string) (*ownedRows, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild: read events: %w", err)
	}
	rows, err := conn.Query(ctx, query)
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("rebuild: read events: %w", err)
	}
	// next reads the raw values: occurred_at and payload must come in
	// binary (pgx asks for it for these types).
	if fd := rows.FieldDescriptions(); len(fd) != 6 || fd[4].Format != pgx.BinaryFormatCode || fd[5].Format != pgx.BinaryFormatCode {
		rows.Close()
		conn.Release()
		return nil, fmt.Errorf("rebuild: read events: unexpected result format")
	}
	return &ownedRows{conn: conn, rows: rows, subjects: map[string]string{}}, nil
}

// next moves to the next row; ok is false after the last.
func (r *ownedRows) next() error {
	r.ok = false
	if r.rows == nil {
		return nil
	}
	for r.rows.Next() {
		raw := r.rows.RawValues()
		if len(raw[4]) != 8 {
			return fmt.Errorf("rebuild: read events: occurred_at of %d bytes", len(raw[4]))
		}
		// Strings are made only when they change: a customer's rows
		// share its id.
		if string(raw[0]) != r.owner {
			r.owner = string(raw[0])
		}
		if string(raw[1]) != r.customer {
			r.customer = string(raw[1])
			if r.customer == r.owner {
				r.customer = r.owner
			}
		}
		customer := r.customer
		if r.skip != nil && r.skip(customer) {
			continue
		}
		subject, ok := r.subjects[string(raw[3])]
		if !ok {
			subject = string(raw[3])
			r.subjects[subject] = subject
		}
		// timestamptz: microseconds since 2000-01-01 UTC.
		at := time.UnixMicro(int64(binary.BigEndian.Uint64(raw[4])) + pgEpochMicros).UTC()
		e := Entry{EventID: string(raw[2]), CustomerID: customer, Subject: subject, OccurredAt: at}
		// Decoded by the fold, on every core: this goroutine reads alone.
		e.Payload = bytes.Clone(raw[5])
		r.entry, r.ok = e, true
		return nil
	}
	if err := r.rows.Err(); err != nil {
		return fmt.Errorf("rebuild: read events: %w", err)
	}
	return nil
}

// pgEpochMicros is PostgreSQL's epoch, 2000-01-01 UTC, in Unix microseconds.
const pgEpochMicros = 946684800000000

func (r *ownedRows) close() {
	if r.rows != nil {
		r.rows.Close()
		r.conn.Release()
	}
}
