package view

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/services/projector/client"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// Streams are the streams the projection is built from.
var Streams = []string{natsbus.StreamBilling, natsbus.StreamCRM, natsbus.StreamSupport}

// RebuildReport is the status API's document (client.RebuildReport).
type RebuildReport = client.RebuildReport

// ErrRebuildRunning means another rebuild holds the rebuild lock.
var ErrRebuildRunning = errors.New("another rebuild is running")

// ErrHistoryIncomplete means a stream no longer starts at its first
// message, so a rebuild cannot reproduce the live projection.
var ErrHistoryIncomplete = errors.New("stream history incomplete")

// Rebuild replays the streams into fresh tables and swaps them in for the
// live projection, which keeps serving and applying meanwhile. It streams
// the messages into the fresh events table in bounded batches, then reads
// them back one customer at a time, folds each (the same Fold the live
// path uses) and bulk-loads the views: it holds a batch of messages and a
// customer's history at a time, the merges, and 8 bytes per event id (see
// loadEvents). Then, holding the swap lock so no live batch commits, it
// applies what arrived since it started and renames the schemas in one
// transaction.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream, log *slog.Logger) (rep RebuildReport, err error) {
	start := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	defer conn.Release()
	unlock, err := takeRebuildLock(ctx, conn.Conn())
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	// The rebuild's tables are thrown away if anything fails before the
	// swap, whose commit flushes all they wrote: their loads need not wait
	// for the WAL to reach the disk, one flush per batch.
	reset, err := asyncCommit(ctx, conn)
	if err != nil {
		return rep, err
	}
	defer reset()

	fresh := pgx.Identifier{RebuildSchema}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+fresh+" CASCADE; "+migrations.TablesDDL(RebuildSchema, true)+"; "+suspectsDDL()); err != nil {
		return rep, fmt.Errorf("rebuild: create tables: %w", err)
	}
	merges, err := loadEvents(ctx, conn.Conn(), js, log, &rep)
	if err != nil {
		return rep, err
	}
	readDone := time.Now()
	// The fold reads the events back in customer order: index them first.
	if err := buildIndexes(ctx, pool, "events"); err != nil {
		return rep, err
	}
	eventsIndexed := time.Now()
	err = loadCustomers(ctx, conn.Conn(), pool, merges, &rep)
	loadDone := time.Now()
	if err == nil {
		err = buildIndexes(ctx, pool, "event_sources", "aliases", "customers")
	}
	if err != nil {
		return rep, err
	}
	indexDone := time.Now()

	// Catch up and swap with live batches held off.
	if rep.CaughtUp, err = swap(ctx, conn.Conn(), NewStore(pool, RebuildSchema), js, rep.LastSequences, log); err != nil {
		return rep, err
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.EventsPerSecond = float64(rep.Events+rep.Duplicates+rep.Skipped+rep.CaughtUp) / rep.Seconds
	}
	log.InfoContext(ctx, "projection rebuilt", "events", rep.Events, "customers", rep.Customers, "caught_up", rep.CaughtUp,
		"skipped", rep.Skipped, "seconds", rep.Seconds, "events_per_second", int(rep.EventsPerSecond),
		"read_seconds", readDone.Sub(start).Seconds(), "events_index_seconds", eventsIndexed.Sub(readDone).Seconds(),
		"load_seconds", loadDone.Sub(eventsIndexed).Seconds(),
		"index_seconds", indexDone.Sub(loadDone).Seconds(), "swap_seconds", time.Since(indexDone).Seconds())
	return rep, nil
}

// asyncCommit turns synchronous_commit off for the session on conn, and
// returns what turns it back on, to call before conn goes back to the
// pool: it closes the connection if that fails, so no other use of it
// commits without waiting.
func asyncCommit(ctx context.Context, conn *pgxpool.Conn) (reset func(), err error) {
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	return func() {
		ctx := context.WithoutCancel(ctx)
		if _, err := conn.Exec(ctx, "RESET synchronous_commit"); err != nil {
			_ = conn.Conn().Close(ctx)
		}
	}, nil
}

// takeRebuildLock takes the lock one rebuild at a time holds
// (ErrRebuildRunning if another has it) and returns its release.
func takeRebuildLock(ctx context.Context, conn *pgx.Conn) (unlock func() error, err error) {
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", migrations.LockSpace, lockRebuild).Scan(&got); err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if !got {
		return nil, ErrRebuildRunning
	}
	return func() error {
		_, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", migrations.LockSpace, lockRebuild)
		return err
	}, nil
}

// foldAliases applies merges in stream order with Store.merge's rules:
// flat chains, first survivor wins. It keeps who points at each survivor,
// so re-pointing the customers merged into one that is merged in turn
// costs what it moves, not a pass over every alias.
func foldAliases(merges []merge) map[string]string {
	aliases := map[string]string{}
	into := map[string][]string{} // survivor → the customers aliased to it
	for _, e := range merges {
		root := e.survivor
		if a, ok := aliases[root]; ok {
			root = a
		}
		for _, m := range e.merged {
			if m == root || m == "" {
				continue
			}
			if _, ok := aliases[m]; !ok {
				aliases[m] = root
				into[root] = append(into[root], m)
			}
			for _, k := range into[m] {
				aliases[k] = root
			}
			into[root] = append(into[root], into[m]...)
			delete(into, m)
		}
	}
	return aliases
}

// buildIndexes indexes the named tables of the rebuilt schema and analyzes
// them, two statements at a time (a GIN index builds on one core).
func buildIndexes(ctx context.Context, pool *pgxpool.Pool, tables ...string) error {
	fresh := pgx.Identifier{RebuildSchema}.Sanitize()
	var stmts []string
	for _, st := range strings.Split(strings.TrimSpace(migrations.IndexDDL(RebuildSchema)), "\n") {
		for _, t := range tables {
			if strings.Contains(st, " ON "+fresh+"."+t+" ") {
				stmts = append(stmts, st)
			}
		}
	}
	for _, t := range tables {
		stmts = append(stmts, "ANALYZE "+fresh+"."+t)
	}
	work := make(chan string, len(stmts))
	for _, st := range stmts {
		work <- st
	}
	close(work)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			var err error
			for st := range work {
				if err == nil {
					err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						if _, err := tx.Exec(ctx, "SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL synchronous_commit = off"); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, st)
						return err
					})
				}
			}
			errs <- err
		}()
	}
	if err := errors.Join(<-errs, <-errs); err != nil {
		return fmt.Errorf("rebuild: index: %w", err)
	}
	return nil
}

// swap applies the messages stored after last (per stream) to the rebuilt
// tables and renames them into place, in one transaction holding the swap
// lock exclusively.
func swap(ctx context.Context, conn *pgx.Conn, fresh *Store, js jetstream.JetStream, last map[string]uint64, log *slog.Logger) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("rebuild: swap: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The swap commits durably, and with it all the rebuild wrote before.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '30s'; SET LOCAL synchronous_commit = on"); err != nil {
		return 0, fmt.Errorf("rebuild: swap: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", migrations.LockSpace, migrations.LockSwap); err != nil {
		return 0, fmt.Errorf("rebuild: swap lock: %w", err)
	}
	caught := 0
	for _, stream := range Streams {
		var batch []Entry
		_, err := readStream(ctx, js, stream, last[stream]+1, func(subject string, data []byte, h map[string][]string) {
			e, err := NewEntry(subject, data, h)
			if err != nil {
				log.WarnContext(ctx, "rebuild: message cannot be projected", "stream", stream, "subject", subject, "error", err)
				return
			}
			batch = append(batch, e)
		})
		if err != nil {
			return 0, err
		}
		for len(batch) > 0 {
			n := min(len(batch), 1000)
			if err := fresh.apply(ctx, tx, batch[:n], false, nil); err != nil {
				return 0, fmt.Errorf("rebuild: catch up: %w", err)
			}
			caught += n
			batch = batch[n:]
		}
	}
	live, retired := pgx.Identifier{Schema}.Sanitize(), pgx.Identifier{retiredSchema}.Sanitize()
	if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+retired+" CASCADE"); err != nil {
		return 0, fmt.Errorf("rebuild: swap: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", Schema).Scan(&exists); err != nil {
		return 0, fmt.Errorf("rebuild: swap: %w", err)
	}
	stmt := "ALTER SCHEMA " + pgx.Identifier{RebuildSchema}.Sanitize() + " RENAME TO " + live
	if exists {
		stmt = "ALTER SCHEMA " + live + " RENAME TO " + retired + "; " + stmt + "; DROP SCHEMA " + retired + " CASCADE"
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return 0, fmt.Errorf("rebuild: swap: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("rebuild: swap: %w", err)
	}
	return caught, nil
}

// readStream calls fn for every message of stream from sequence from up to
// the last one stored when it starts, and returns the last sequence read
// (from-1 if none).
func readStream(ctx context.Context, js jetstream.JetStream, stream string, from uint64, fn func(subject string, data []byte, h map[string][]string)) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("rebuild: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("rebuild: stream %s: %w", stream, err)
	}
	end := info.State.LastSeq
	if end < from || info.State.Msgs == 0 {
		return from - 1, nil
	}
	if from == 1 && info.State.FirstSeq > 1 {
		// Retention (NATS_STREAM_MAX_AGE) or a purge removed the start of
		// the history: the rebuilt projection would lose what the live one
		// still shows.
		return 0, fmt.Errorf("rebuild: stream %s no longer holds its first %d messages (retention or purge); a rebuild would lose that history: %w",
			stream, info.State.FirstSeq-1, ErrHistoryIncomplete)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from})
	if err != nil {
		return 0, fmt.Errorf("rebuild: read %s: %w", stream, err)
	}
	defer DropConsumer(ctx, s, cons)
	// Nothing stored at or after from (the sequences up to end may have
	// been deleted): done, rather than waiting for a message to come.
	ci, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("rebuild: read %s: %w", stream, err)
	}
	if ci.NumPending == 0 {
		return from - 1, nil
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return 0, fmt.Errorf("rebuild: read %s: %w", stream, err)
	}
	defer it.Stop()
	last := from - 1
	for last < end {
		m, err := it.Next(jetstream.NextMaxWait(30 * time.Second))
		if err != nil {
			return last, fmt.Errorf("rebuild: read %s after sequence %d: %w", stream, last, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return last, fmt.Errorf("rebuild: read %s: %w", stream, err)
		}
		last = meta.Sequence.Stream
		fn(m.Subject(), m.Data(), m.Headers())
		if meta.NumPending == 0 {
			break // the end, also when the message at end was deleted
		}
	}
	return last, nil
}

// DropConsumer deletes an ordered consumer once read, rather than leaving
// it to the server's inactivity timeout.
func DropConsumer(ctx context.Context, s jetstream.Stream, cons jetstream.Consumer) {
	if ci := cons.CachedInfo(); ci != nil {
		_ = s.DeleteConsumer(context.WithoutCancel(ctx), ci.Name)
	}
}
