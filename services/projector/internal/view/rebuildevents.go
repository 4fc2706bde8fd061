package view

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
)

// loadBatch is how many messages the rebuild holds before it writes them:
// what bounds its memory while it reads the streams.
const loadBatch = 4096

// eventKey is the hash loadEvents tells event ids apart by; a variable so
// a test can make them all collide (export_test.go).
var eventKey = maphash.String

// merge is a merge read from the streams: survivor absorbed merged. ord is
// the message's position in the rebuild's reading order (Streams, each in
// sequence), which foldAliases applies them in.
type merge struct {
	ord      int64
	survivor string
	merged   []string
}

// suspect is a message whose event id hashed like one read before: most
// likely a duplicate, decided once everything is stored (see loadEvents).
type suspect struct {
	ord int64
	e   Entry
}

// eventBatch is a batch of messages as loadEvents writes them: the events
// and their sources already encoded as binary COPY rows, and the suspects.
type eventBatch struct {
	events, sources []byte
	n               int // messages
	suspects        []suspect
}

// loadEvents reads everything stored so far in Streams into the rebuild
// schema's events and event_sources tables, a batch at a time, and returns
// the merges it read (in reading order). It counts the events, the
// duplicates and the messages it skips in rep, with each stream's last
// sequence read.
//
// Memory: a few batches of messages, the merges, and 8 bytes per distinct
// event id (a hash, to tell a duplicate without holding the ids). A
// message whose hash was seen before goes to the suspects table instead
// of events; once all are stored, a suspect whose id is not in events (a
// hash collision) is stored after all, the first of its id in reading
// order, so the rows are those of keeping the first message of each event
// id.
//
// The reader encodes each message straight into its batch's binary COPY
// rows, with no row of values in between, while PostgreSQL loads the
// batch before.
func loadEvents(ctx context.Context, conn *pgx.Conn, js jetstream.JetStream, log *slog.Logger, rep *RebuildReport) ([]merge, error) {
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	rep.LastSequences = map[string]uint64{}
	var (
		merges, suspectMerges []merge
		events, suspects      int
	)
	batches := make(chan *eventBatch, 2)
	free := make(chan *eventBatch, 4) // batches loaded, for their buffers
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		seed := maphash.MakeSeed()
		seen := map[uint64]struct{}{}
		var ord int64
		next := func() *eventBatch {
			select {
			case b := <-free:
				b.events, b.sources, b.n, b.suspects = b.events[:0], b.sources[:0], 0, nil
				return b
			default:
				return &eventBatch{}
			}
		}
		b := next()
		send := func() bool {
			select {
			case batches <- b:
				b = next()
				return true
			case <-rctx.Done():
				return false
			}
		}
		for _, stream := range Streams {
			last, err := readStream(rctx, js, stream, 1, func(subject string, data []byte, h map[string][]string) {
				if rctx.Err() != nil {
					return // the load failed: drain, hold nothing
				}
				ord++
				e, err := NewEntry(subject, data, h)
				if err != nil {
					rep.Skipped++
					log.WarnContext(ctx, "rebuild: message cannot be projected", "stream", stream, "subject", subject, "error", err)
					return
				}
				var m *merge
				if up, ok := e.msg.(*billingv1.CustomerUpserted); ok && len(up.GetMergedCanonicalIds()) > 0 {
					m = &merge{ord: ord, survivor: e.CustomerID, merged: up.GetMergedCanonicalIds()}
				}
				e.msg = nil
				key := eventKey(seed, e.EventID)
				if _, dup := seen[key]; dup {
					// Held until its batch is loaded: data is the message's
					// own buffer, which nothing else writes.
					b.suspects = append(b.suspects, suspect{ord, e})
					if m != nil {
						suspectMerges = append(suspectMerges, *m)
					}
					suspects++
				} else {
					seen[key] = struct{}{}
					b.events = appendEventRow(b.events, &e)
					for _, id := range e.SourceIDs {
						b.sources = appendSourceRow(b.sources, id, e.EventID)
					}
					if m != nil {
						merges = append(merges, *m)
					}
					events++
				}
				b.n++
				if b.n >= loadBatch && !send() {
					return
				}
			})
			if err != nil {
				readErr <- err
				return
			}
			rep.LastSequences[stream] = last
		}
		if b.n > 0 && !send() {
			readErr <- rctx.Err()
			return
		}
		readErr <- nil
	}()
	for b := range batches {
		if err := copyBatch(ctx, conn, b); err != nil {
			stopReading()
			for range batches {
			}
			<-readErr
			return nil, err
		}
		select {
		case free <- b:
		default:
		}
	}
	if err := <-readErr; err != nil {
		return nil, err
	}
	rep.Events = events
	if suspects > 0 {
		kept, err := keepSuspects(ctx, conn)
		if err != nil {
			return nil, err
		}
		rep.Events += len(kept)
		rep.Duplicates = suspects - len(kept)
		for _, m := range suspectMerges {
			if kept[m.ord] {
				merges = append(merges, m)
			}
		}
		slices.SortFunc(merges, func(a, b merge) int { return int(a.ord - b.ord) })
	}
	if _, err := conn.Exec(ctx, "DROP TABLE "+pgx.Identifier{RebuildSchema, "suspects"}.Sanitize()); err != nil {
		return nil, fmt.Errorf("rebuild: drop suspects: %w", err)
	}
	return merges, nil
}

// suspectsDDL is the table loadEvents stores suspected duplicates in until
// it has read everything; unlogged, as the whole rebuild schema is thrown
// away if the rebuild fails.
func suspectsDDL() string {
	return "CREATE UNLOGGED TABLE " + pgx.Identifier{RebuildSchema, "suspects"}.Sanitize() + ` (
		ord bigint NOT NULL, event_id text COLLATE "C" NOT NULL, customer_id text COLLATE "C" NOT NULL, subject text NOT NULL,
		occurred_at timestamptz NOT NULL, trace_id text NOT NULL, payload bytea NOT NULL, received_at timestamptz, source_ids text[] NOT NULL)`
}

var eventColumns = []string{"event_id", "customer_id", "subject", "occurred_at", "trace_id", "payload", "received_at"}

// copyBatch bulk-loads a batch: its events with their sources, and its
// suspects.
func copyBatch(ctx context.Context, conn *pgx.Conn, b *eventBatch) error {
	if len(b.events) > 0 {
		if err := copyBinary(ctx, conn, pgx.Identifier{RebuildSchema, "events"}, eventColumns, b.events); err != nil {
			return fmt.Errorf("rebuild: copy events: %w", err)
		}
	}
	if len(b.sources) > 0 {
		if err := copyBinary(ctx, conn, pgx.Identifier{RebuildSchema, "event_sources"}, []string{"source_id", "event_id"}, b.sources); err != nil {
			return fmt.Errorf("rebuild: copy event sources: %w", err)
		}
	}
	if len(b.suspects) == 0 {
		return nil
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{RebuildSchema, "suspects"}, append([]string{"ord"}, append(eventColumns, "source_ids")...),
		pgx.CopyFromSlice(len(b.suspects), func(i int) ([]any, error) {
			s := &b.suspects[i]
			return []any{s.ord, s.e.EventID, s.e.CustomerID, s.e.Subject, s.e.OccurredAt, s.e.TraceID, s.e.Payload, s.e.receivedAt(), nonNil(s.e.SourceIDs)}, nil
		})); err != nil {
		return fmt.Errorf("rebuild: copy suspected duplicates: %w", err)
	}
	return nil
}

// copyBinary runs COPY FROM STDIN in PostgreSQL's binary format with rows,
// tuples encoded by appendEventRow or appendSourceRow.
func copyBinary(ctx context.Context, conn *pgx.Conn, table pgx.Identifier, columns []string, rows []byte) error {
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	sql := "COPY " + table.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN (FORMAT binary)"
	_, err := conn.PgConn().CopyFrom(ctx, io.MultiReader(bytes.NewReader(copyHeader), bytes.NewReader(rows), bytes.NewReader(copyTrailer)), sql)
	return err
}

// The binary COPY format's header (signature, flags, no extension) and
// trailer (a tuple of -1 fields).
var (
	copyHeader  = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	copyTrailer = []byte{0xff, 0xff}
)

// appendEventRow appends e as a binary COPY tuple of eventColumns.
func appendEventRow(buf []byte, e *Entry) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(eventColumns)))
	buf = appendField(buf, e.EventID)
	buf = appendField(buf, e.CustomerID)
	buf = appendField(buf, e.Subject)
	buf = appendTime(buf, e.OccurredAt)
	buf = appendField(buf, e.TraceID)
	buf = appendField(buf, e.Payload)
	if e.ReceivedAt.IsZero() {
		return binary.BigEndian.AppendUint32(buf, 0xffffffff) // NULL
	}
	return appendTime(buf, e.ReceivedAt)
}

// appendSourceRow appends (source_id, event_id) as a binary COPY tuple.
func appendSourceRow(buf []byte, sourceID, eventID string) []byte {
	buf = binary.BigEndian.AppendUint16(buf, 2)
	buf = appendField(buf, sourceID)
	return appendField(buf, eventID)
}

// appendField appends a text or bytea field: its length, then its bytes.
func appendField[T string | []byte](buf []byte, v T) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
	return append(buf, v...)
}

// appendTime appends a timestamptz field: microseconds since 2000-01-01 UTC.
func appendTime(buf []byte, t time.Time) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	return binary.BigEndian.AppendUint64(buf, uint64(t.UnixMicro()-pgEpochMicros))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// keepSuspects stores, of the suspects whose event id is not in events,
// the first of each id in reading order, and returns their ords.
func keepSuspects(ctx context.Context, conn *pgx.Conn) (map[int64]bool, error) {
	t := func(name string) string { return pgx.Identifier{RebuildSchema, name}.Sanitize() }
	rows, err := conn.Query(ctx, `WITH firsts AS (
			SELECT DISTINCT ON (event_id) * FROM `+t("suspects")+` s
			WHERE NOT EXISTS (SELECT 1 FROM `+t("events")+` e WHERE e.event_id = s.event_id)
			ORDER BY event_id, ord
		), events AS (
			INSERT INTO `+t("events")+` (event_id, customer_id, subject, occurred_at, trace_id, payload, received_at)
			SELECT event_id, customer_id, subject, occurred_at, trace_id, payload, received_at FROM firsts
		), sources AS (
			INSERT INTO `+t("event_sources")+` (source_id, event_id) SELECT unnest(source_ids), event_id FROM firsts
		)
		SELECT ord FROM firsts`)
	if err != nil {
		return nil, fmt.Errorf("rebuild: keep suspected duplicates: %w", err)
	}
	ords, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("rebuild: keep suspected duplicates: %w", err)
	}
	kept := make(map[int64]bool, len(ords))
	for _, o := range ords {
		kept[o] = true
	}
	return kept, nil
}
