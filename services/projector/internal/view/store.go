package view

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/emailaddr"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/postgres"
	billingv1 "github.com/switchyard/switchyard/proto/gen/switchyard/billing/v1"
	"github.com/switchyard/switchyard/services/projector/client"
	"github.com/switchyard/switchyard/services/projector/migrations"
)

// RebuildSchema is where Rebuild builds the fresh projection before it
// renames it to migrations.Schema; the one it replaces is renamed
// retiredSchema, then dropped.
const (
	RebuildSchema = "projection_rebuild"
	retiredSchema = "projection_retired"
)

// Schema is where the live projection's tables are.
const Schema = migrations.Schema

// lockRebuild is the advisory lock (in migrations.LockSpace) one rebuild
// at a time holds.
const lockRebuild = 2

// ViewVersion is the version of what Fold stores (migrations.ViewVersion).
const ViewVersion = migrations.ViewVersion

// Store reads and writes one projection schema.
type Store struct {
	pool    *pgxpool.Pool
	schema  string
	t       tables
	relocks atomic.Int64 // batches Apply started again (see relockError)
	// afterFirstRound, when set (by tests), runs in a live apply once its
	// first round of customer locks is held.
	afterFirstRound func()
}

type tables struct{ events, sources, aliases, customers string }

// NewStore returns the store of schema (Schema for the live projection).
func NewStore(pool *pgxpool.Pool, schema string) *Store {
	q := func(t string) string { return pgx.Identifier{schema, t}.Sanitize() }
	return &Store{pool: pool, schema: schema, t: tables{events: q("events"), sources: q("event_sources"), aliases: q("aliases"), customers: q("customers")}}
}

// Apply projects entries in one transaction: it stores them (a duplicate is
// a no-op), records merges, and recomputes every customer they touch. It is
// idempotent and commutative: any order and any repetition of the same
// entries leave the same rows.
//
// The transaction is pipelined (as identity's resolutions are): BEGIN, the
// shared swap lock, the events, their sources and the customers' locks
// travel as one round trip, COMMIT with the views' upserts, so a batch
// costs four round trips — that, resolving the owners and loading their
// events — where a round trip a statement cost ten.
func (s *Store) Apply(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	c := conn.Conn()
	defer postgres.RollbackOpen(ctx, c)
	var learned []string
	for attempt := 1; ; attempt++ {
		err := s.apply(ctx, c, entries, true, learned)
		var relock *relockError
		if !errors.As(err, &relock) {
			return err
		}
		if attempt == maxRelocks {
			return errclass.Transient(err)
		}
		// Start again with the owners found so far locked in the first
		// round, where waiting for a lock is safe.
		postgres.RollbackOpen(ctx, c)
		s.relocks.Add(1)
		learned = append(learned, relock.ids...)
	}
}

// Relocks is how many batches Apply has started again because a later
// round of their customer locks was held by another transaction.
func (s *Store) Relocks() int64 { return s.relocks.Load() }

// maxRelocks bounds Apply's attempts at one batch while other transactions
// keep holding the owners its later rounds of locks find (each attempt
// takes what the last one found in its first round, so only merges
// committed meanwhile can make another needed).
const maxRelocks = 5

// relockError is a later round of a batch's customer locks finding one held
// by another transaction: waiting for it while holding the first round's
// could deadlock, which PostgreSQL only detects after deadlock_timeout (a
// second) before failing one of the two.
type relockError struct{ ids []string }

func (e *relockError) Error() string {
	return fmt.Sprintf("lock customers: %d owners held by another transaction", len(e.ids))
}

// querier is what apply needs of its transaction: Rebuild's pgx.Tx, or
// the connection on which Apply opened one.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// apply projects entries on q. live is Apply's: q is a connection with no
// transaction open, which apply begins (with the shared swap lock), locks
// customers in and commits. Rebuild also uses apply to catch up, in its
// own transaction holding the swap lock exclusively, so without
// per-customer locks (thousands of them in one transaction would exhaust
// PostgreSQL's lock table).
//
// learned are customer ids to lock in the first round besides those the
// entries name: the owners an earlier attempt's later rounds found (see
// Apply).
func (s *Store) apply(ctx context.Context, q querier, entries []Entry, live bool, learned []string) error {
	if len(entries) == 0 {
		return nil
	}
	// Lock every customer id the batch names — including both sides of a
	// merge — before reading aliases, so a merge and a batch about the
	// merged customer never interleave (the batch would recreate the
	// merged customer's row). Then lock the owners the ids resolve to: one
	// recompute at a time per customer, and whoever takes the lock last
	// sees every event committed before it (see the package doc). Only
	// the first round waits for a lock: a later one takes what is free or
	// starts the batch again with what it found in its first round, so
	// two batches never wait for each other (see Apply).
	touched := make([]string, 0, len(entries))
	type mergeOf struct {
		survivor string
		merged   []string
	}
	var merges []mergeOf
	for i := range entries {
		touched = append(touched, entries[i].CustomerID)
		m, _ := entries[i].decoded()
		if up, ok := m.(*billingv1.CustomerUpserted); ok && len(up.GetMergedCanonicalIds()) > 0 {
			merges = append(merges, mergeOf{entries[i].CustomerID, up.GetMergedCanonicalIds()})
			touched = append(touched, up.GetMergedCanonicalIds()...)
		}
	}
	// Lock the ids, then the customers they resolve to, until resolving
	// finds nothing new: an owner changes only under its own lock (a merge
	// locks both sides), so what we resolve while holding it is stable.
	// The first round of locks rides with the events.
	locks := &customerLocks{held: map[string]bool{}, enabled: live}
	first := &labelledBatch{}
	if live {
		first.Queue("BEGIN")
		first.label("begin")
		// Every statement of a batch has an index to probe per id. Without
		// sequential scans a plan cached while the store was tiny (even
		// analysed so) still probes it once the store has grown, so the
		// statements are prepared once per connection instead of planned
		// per batch, which cost more than running them
		// (TestBatchLoadPlansForTheStoreAsItGrows).
		first.Queue("SET LOCAL enable_seqscan = off")
		first.label("plan index probes only")
		first.Queue("SELECT pg_advisory_xact_lock_shared($1, $2)", migrations.LockSpace, migrations.LockSwap)
		first.label("share the swap lock")
	}
	s.queueInsertEvents(first, entries)
	locks.queue(first, append(slices.Clone(touched), learned...))
	if err := first.SendBatch(ctx, q); err != nil {
		return err
	}
	if live && s.afterFirstRound != nil {
		s.afterFirstRound()
	}
	var owners []string
	var err error
	if len(merges) == 0 {
		owners, err = s.resolveLocked(ctx, q, locks, touched)
	} else {
		survivors := make([]string, 0, len(merges))
		for _, m := range merges {
			survivors = append(survivors, m.survivor)
		}
		if _, err := s.resolveLocked(ctx, q, locks, append(slices.Clone(touched), survivors...)); err != nil {
			return err
		}
		for _, m := range merges {
			if err := s.merge(ctx, q, m.survivor, m.merged); err != nil {
				return err
			}
		}
		owners, err = s.resolveLocked(ctx, q, locks, touched)
	}
	if err != nil {
		return err
	}
	byOwner, err := s.load(ctx, q, owners)
	if err != nil {
		return err
	}
	views := make([]View, 0, len(owners))
	for _, id := range owners {
		views = append(views, Fold(id, byOwner[id]))
	}
	return s.upsertViews(ctx, q, views, live)
}

// customerLocks are the per-customer advisory locks a transaction holds.
type customerLocks struct {
	held    map[string]bool
	enabled bool
}

// take is a later round: it locks the ids not yet held if none is held by
// another transaction, else it fails with a relockError (the locks it did
// take are the transaction's until it rolls back). Waiting here, holding
// the first round's locks, could deadlock with a batch that holds this
// round's and waits in its first round for ours.
func (l *customerLocks) take(ctx context.Context, q querier, ids []string) error {
	missing := l.missing(ids)
	if len(missing) == 0 || !l.enabled {
		return nil
	}
	var all bool
	if err := q.QueryRow(ctx, `SELECT coalesce(bool_and(pg_try_advisory_xact_lock(k)), true)
		FROM (SELECT DISTINCT hashtextextended(id, 0) AS k FROM unnest($1::text[]) id ORDER BY k) locks`, missing).Scan(&all); err != nil {
		return fmt.Errorf("lock customers: %w", err)
	}
	if !all {
		return &relockError{ids: missing}
	}
	return nil
}

// queue queues the first round: the locks of the ids not yet held, waited
// for in a fixed order, so two first rounds never take them crosswise.
func (l *customerLocks) queue(b *labelledBatch, ids []string) {
	missing := l.missing(ids)
	if len(missing) == 0 || !l.enabled {
		return
	}
	b.Queue(`SELECT pg_advisory_xact_lock(k)
		FROM (SELECT DISTINCT hashtextextended(id, 0) AS k FROM unnest($1::text[]) id ORDER BY k) locks`, missing)
	b.label("lock customers")
}

// missing marks the ids not yet held as held and returns them.
func (l *customerLocks) missing(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !l.held[id] {
			l.held[id] = true
			out = append(out, id)
		}
	}
	return out
}

// labelledBatch is a pipeline of statements whose answers are not read,
// each failure reported with what the statement was for.
type labelledBatch struct {
	pgx.Batch
	labels []string
}

// label names the statement queued last.
func (b *labelledBatch) label(what string) {
	for len(b.labels) < b.Len()-1 {
		b.labels = append(b.labels, "")
	}
	b.labels = append(b.labels, what)
}

// SendBatch sends b on q in one round trip and reads every answer: the
// first failure ends the pipeline (the server skips the rest).
func (b *labelledBatch) SendBatch(ctx context.Context, q querier) error {
	if b.Len() == 0 {
		return nil
	}
	br := q.SendBatch(ctx, &b.Batch)
	for i := range b.Len() {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			if i < len(b.labels) && b.labels[i] != "" {
				return fmt.Errorf("%s: %w", b.labels[i], err)
			}
			return err
		}
	}
	return br.Close()
}

// resolveLocked returns the owners of ids (following aliases) with each
// owner locked, resolving again after every new lock.
func (s *Store) resolveLocked(ctx context.Context, tx querier, l *customerLocks, ids []string) ([]string, error) {
	for {
		var owners []string
		// A probe of aliases_pkey per id (see apply on why no plan may scan).
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(DISTINCT coalesce((SELECT survivor_id FROM `+s.t.aliases+` WHERE merged_id = c.id), c.id)), '{}')
			FROM unnest($1::text[]) c(id)`, ids).Scan(&owners); err != nil {
			return nil, fmt.Errorf("resolve customers: %w", err)
		}
		fresh := slices.DeleteFunc(slices.Clone(owners), func(id string) bool { return l.held[id] })
		if len(fresh) == 0 {
			return owners, nil
		}
		if err := l.take(ctx, tx, fresh); err != nil {
			return nil, err
		}
	}
}

// queueInsertEvents queues the entries' events and their sources.
//
// Both are inserted in key order: two batches holding some of the same
// events (a redelivery while the first delivery is still being applied,
// two replicas given one message twice) each wait at the first key the
// other has inserted, never crosswise, which would deadlock.
func (s *Store) queueInsertEvents(b *labelledBatch, entries []Entry) {
	n := len(entries)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(entries[a].EventID, entries[b].EventID) })
	ids, customers, subjectsCol, traces := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ats, received := make([]time.Time, n), make([]*time.Time, n)
	payloads := make([][]byte, n)
	for i, j := range order {
		e := &entries[j]
		ids[i], customers[i], subjectsCol[i], traces[i], ats[i], payloads[i] = e.EventID, e.CustomerID, e.Subject, e.TraceID, e.OccurredAt, e.Payload
		received[i] = e.receivedAt()
	}
	b.Queue(`INSERT INTO `+s.t.events+` (event_id, customer_id, subject, occurred_at, trace_id, payload, received_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::bytea[], $7::timestamptz[])
		ON CONFLICT (event_id) DO NOTHING`,
		ids, customers, subjectsCol, ats, traces, payloads, received)
	b.label("insert events")
	type source struct{ id, event string }
	var srcs []source
	for i := range entries {
		for _, id := range entries[i].SourceIDs {
			srcs = append(srcs, source{id, entries[i].EventID})
		}
	}
	slices.SortFunc(srcs, func(a, b source) int {
		return cmp.Or(strings.Compare(a.id, b.id), strings.Compare(a.event, b.event))
	})
	srcIDs, srcEvents := make([]string, len(srcs)), make([]string, len(srcs))
	for i, src := range srcs {
		srcIDs[i], srcEvents[i] = src.id, src.event
	}
	b.Queue(`INSERT INTO `+s.t.sources+` (source_id, event_id) SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT (source_id, event_id) DO NOTHING`, srcIDs, srcEvents)
	b.label("insert event sources")
}

// merge records that survivor absorbed merged: chains are kept flat (every
// alias points at a customer that is not itself merged), whatever order the
// merges arrive in. A customer merged into two different survivors keeps
// the first (identity never does this).
func (s *Store) merge(ctx context.Context, tx querier, survivor string, merged []string) error {
	var root string
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT survivor_id FROM `+s.t.aliases+` WHERE merged_id = $1), $1)`, survivor).Scan(&root); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	for _, m := range merged {
		if m == root || m == "" {
			continue
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO `+s.t.aliases+` (merged_id, survivor_id) VALUES ($1, $2) ON CONFLICT (merged_id) DO NOTHING`, m, root)
		b.Queue(`UPDATE `+s.t.aliases+` SET survivor_id = $2 WHERE survivor_id = $1`, m, root)
		b.Queue(`DELETE FROM `+s.t.customers+` WHERE customer_id = $1`, m)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("merge %s into %s: %w", m, root, err)
		}
	}
	return nil
}

// planFresh makes PostgreSQL plan a statement for the tables as they are
// at each execution (pgx sends it as an unnamed statement, described once
// and cached), not once per connection: a named statement's generic plan
// is kept for the connection's life, so one planned while the events table
// was small scans every event long after the table has grown, until an
// ANALYZE happens to invalidate it. The status API's timeline uses it; a
// live batch instead forbids sequential scans in its transaction (see
// apply).
const planFresh = pgx.QueryExecModeCacheDescribe

// andMerged is an array expression of the customer ids the SELECT list
// owners gives and of those merged into the ones survivor (an = operand)
// matches. Written as "customer_id = ANY(ARRAY(…))", not "= ANY(…) OR
// IN (SELECT …)", so that PostgreSQL reads the events through their
// customer index: it plans an OR with a subquery as a scan of every event,
// which made each read cost in proportion to the store's history (the
// timeline's now; a batch's load's once).
func (s *Store) andMerged(owners, survivor string) string {
	return `ARRAY(SELECT ` + owners + ` UNION ALL SELECT merged_id FROM ` + s.t.aliases + ` WHERE survivor_id = ` + survivor + `)`
}

// load returns the entries of each owner and of the customers merged into it.
func (s *Store) load(ctx context.Context, tx querier, owners []string) (map[string][]Entry, error) {
	// The owners and the customers merged into each are found, and each
	// one's events read, by an index probe per id (aliases_survivor,
	// events_customer; see apply on why no plan may scan). An owner is
	// never itself merged (resolveLocked follows the aliases, which merge
	// keeps flat), so the events of a merged customer are its survivor's.
	rows, err := tx.Query(ctx, `SELECT m.owner, e.event_id, e.customer_id, e.subject, e.occurred_at, e.trace_id, e.payload
		FROM (SELECT o.id, o.id FROM unnest($1::text[]) o(id)
			UNION SELECT o.id, a.merged_id FROM unnest($1::text[]) o(id)
				CROSS JOIN LATERAL (SELECT merged_id FROM `+s.t.aliases+` WHERE survivor_id = o.id OFFSET 0) a) m(owner, id)
		CROSS JOIN LATERAL (SELECT * FROM `+s.t.events+` WHERE customer_id = m.id OFFSET 0) e`, owners)
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	out := make(map[string][]Entry, len(owners))
	var owner string
	var e Entry
	_, err = pgx.ForEachRow(rows, []any{&owner, &e.EventID, &e.CustomerID, &e.Subject, &e.OccurredAt, &e.TraceID, &e.Payload}, func() error {
		e.OccurredAt = e.OccurredAt.UTC()
		out[owner] = append(out[owner], e)
		e = Entry{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	return out, nil
}

// upsertViews writes views in one round trip, with COMMIT if commit: one
// statement for all of them (a statement each cost PostgreSQL and the
// projector a bind and execute per customer). A customer's view appears
// once (the last, if views held it twice: one INSERT … ON CONFLICT may not
// update a row twice).
func (s *Store) upsertViews(ctx context.Context, q querier, views []View, commit bool) error {
	b := &labelledBatch{}
	if len(views) > 0 {
		last := make(map[string]int, len(views))
		for i := range views {
			last[views[i].CustomerID] = i
		}
		n := len(last)
		ids, emails, stripeIDs, states, docs := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		lastEvents := make([]time.Time, 0, n)
		for i := range views {
			v := &views[i]
			if last[v.CustomerID] != i {
				continue
			}
			doc, err := json.Marshal(v)
			if err != nil {
				return err
			}
			stripe := []byte("[]")
			if len(v.StripeCustomerIDs) > 0 {
				stripe, err = json.Marshal(v.StripeCustomerIDs)
			}
			if err != nil {
				return err
			}
			ids, emails, stripeIDs = append(ids, v.CustomerID), append(emails, emailaddr.Normalize(v.Email)), append(stripeIDs, string(stripe))
			states, lastEvents, docs = append(states, StateKind(v.State)), append(lastEvents, v.LastEventAt), append(docs, string(doc))
		}
		// Each customer's Stripe ids travel as a JSON array: unnest would
		// flatten an array of arrays.
		b.Queue(`INSERT INTO `+s.t.customers+` (customer_id, email, stripe_ids, state, last_event_at, view)
			SELECT u.id, u.email, ARRAY(SELECT x FROM jsonb_array_elements_text(u.stripe_ids) WITH ORDINALITY AS t(x, o) ORDER BY o),
				u.state, u.last_event_at, u.view
			FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::timestamptz[], $6::json[]) AS u(id, email, stripe_ids, state, last_event_at, view)
			ON CONFLICT (customer_id) DO UPDATE SET email = excluded.email, stripe_ids = excluded.stripe_ids, state = excluded.state,
				last_event_at = excluded.last_event_at, view = excluded.view`,
			ids, emails, stripeIDs, states, lastEvents, docs)
		b.label("upsert customers")
	}
	if !commit {
		return b.SendBatch(ctx, q)
	}
	b.Queue("COMMIT")
	br := q.SendBatch(ctx, &b.Batch)
	defer func() { _ = br.Close() }()
	if len(views) > 0 {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("upsert customers: %w", err)
		}
	}
	if err := postgres.ReadCommit(br); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return br.Close()
}

// ErrNotFound is returned for a customer the projection does not know.
var ErrNotFound = errors.New("customer not found")

// Customer returns the view of id, following merges: asking for a merged
// id returns the customer it was merged into. Its states are evaluated now.
func (s *Store) Customer(ctx context.Context, id string) (json.RawMessage, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT view FROM `+s.t.customers+`
		WHERE customer_id = coalesce((SELECT survivor_id FROM `+s.t.aliases+` WHERE merged_id = $1), $1)`, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("customer: %w", err)
	}
	return evaluateNow(doc)
}

// evaluateNow re-evaluates a stored view's states at the time of reading
// (the projection stores them as of the events).
func evaluateNow(doc []byte) (json.RawMessage, error) {
	var v View
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("customer view: %w", err)
	}
	Evaluate(&v, time.Now())
	return json.Marshal(&v)
}

// FindByEmail returns the views with this (normalised) email.
func (s *Store) FindByEmail(ctx context.Context, email string) ([]json.RawMessage, error) {
	return s.find(ctx, `email = $1`, emailaddr.Normalize(email))
}

// FindByStripeID returns the views linked to a Stripe customer id.
func (s *Store) FindByStripeID(ctx context.Context, id string) ([]json.RawMessage, error) {
	return s.find(ctx, `stripe_ids @> ARRAY[$1::text]`, id)
}

func (s *Store) find(ctx context.Context, where string, arg string) ([]json.RawMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT view FROM `+s.t.customers+` WHERE `+where+` ORDER BY customer_id LIMIT 100`, arg)
	if err != nil {
		return nil, fmt.Errorf("find customers: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("find customers: %w", err)
	}
	docs := make([]json.RawMessage, len(out))
	for i := range out {
		if docs[i], err = evaluateNow(out[i]); err != nil {
			return nil, err
		}
	}
	return docs, nil
}

// TimelineEntry is the status API's document (client.TimelineEntry).
type TimelineEntry = client.TimelineEntry

// timelineEntry describes a stored entry (decoding its payload).
func (e *Entry) timelineEntry() TimelineEntry {
	t := TimelineEntry{EventID: e.EventID, At: e.OccurredAt.UTC(), Kind: e.Kind(), Subject: e.Subject, TraceID: e.TraceID, CustomerID: e.CustomerID}
	t.SourceEventIDs = []string{}
	if full, err := NewEntry(e.Subject, e.Payload, nil); err == nil && full.SourceIDs != nil {
		t.SourceEventIDs = full.SourceIDs
	}
	t.Summary, t.Status = e.Describe()
	return t
}

// TimelinePage is the status API's document (client.TimelinePage).
type TimelinePage = client.TimelinePage

// Cursor is a position in a timeline read in one order.
type Cursor struct {
	At   time.Time
	ID   string
	Desc bool
}

// Timeline returns up to limit entries of the customer (following merges)
// after the cursor, chronologically (or newest first with desc).
func (s *Store) Timeline(ctx context.Context, id string, after *Cursor, limit int, desc bool) (TimelinePage, error) {
	var owner string
	err := s.pool.QueryRow(ctx, `SELECT customer_id FROM `+s.t.customers+`
		WHERE customer_id = coalesce((SELECT survivor_id FROM `+s.t.aliases+` WHERE merged_id = $1), $1)`, id).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return TimelinePage{}, ErrNotFound
	}
	if err != nil {
		return TimelinePage{}, fmt.Errorf("timeline: %w", err)
	}
	cmpOp, order := ">", "ASC"
	if desc {
		cmpOp, order = "<", "DESC"
	}
	args := []any{planFresh, owner, limit + 1}
	cond := ""
	if after != nil {
		cond = ` AND (occurred_at, event_id) ` + cmpOp + ` ($3, $4)`
		args = append(args, after.At, after.ID)
	}
	rows, err := s.pool.Query(ctx, `SELECT event_id, occurred_at, subject, trace_id, customer_id, payload FROM `+s.t.events+`
		WHERE customer_id = ANY(`+s.andMerged("$1::text", "$1")+`)`+cond+`
		ORDER BY occurred_at `+order+`, event_id `+order+` LIMIT $2`, args...)
	if err != nil {
		return TimelinePage{}, fmt.Errorf("timeline: %w", err)
	}
	page := TimelinePage{CustomerID: owner, Entries: []TimelineEntry{}}
	var e Entry
	_, err = pgx.ForEachRow(rows, []any{&e.EventID, &e.OccurredAt, &e.Subject, &e.TraceID, &e.CustomerID, &e.Payload}, func() error {
		page.Entries = append(page.Entries, e.timelineEntry())
		e = Entry{}
		return nil
	})
	if err != nil {
		return TimelinePage{}, fmt.Errorf("timeline: %w", err)
	}
	if len(page.Entries) > limit {
		page.Entries = page.Entries[:limit]
		last := page.Entries[limit-1]
		page.Next = Cursor{At: last.At, ID: last.EventID, Desc: desc}.String()
	}
	return page, nil
}

// Rows returns every row of the projection in a canonical text form, for
// comparing two projections (tests and rebuild verification).
func (s *Store) Rows(ctx context.Context) ([]string, error) {
	var out []string
	for _, q := range []string{
		`SELECT format('events %s %s %s %s %s %s', event_id, customer_id, subject, occurred_at, trace_id, md5(payload)) FROM ` + s.t.events,
		`SELECT format('aliases %s %s', merged_id, survivor_id) FROM ` + s.t.aliases,
		`SELECT format('event_sources %s %s', source_id, event_id) FROM ` + s.t.sources,
		`SELECT format('customers %s %s %s %s %s %s', customer_id, email, stripe_ids, state, last_event_at, view) FROM ` + s.t.customers,
	} {
		rows, err := s.pool.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	slices.Sort(out)
	return out, nil
}

// CustomerOfStripeEvent returns the customer (following merges) the hub's
// events about a Stripe event belong to.
func (s *Store) CustomerOfStripeEvent(ctx context.Context, stripeEventID string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT coalesce(a.survivor_id, e.customer_id) FROM `+s.t.sources+` src
		JOIN `+s.t.events+` e ON e.event_id = src.event_id
		LEFT JOIN `+s.t.aliases+` a ON a.merged_id = e.customer_id
		WHERE src.source_id = $1 LIMIT 1`, stripeEventID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("customer of %s: %w", stripeEventID, err)
	}
	return id, nil
}

// String encodes the cursor for the next= of a timeline page.
func (c Cursor) String() string {
	order := "a"
	if c.Desc {
		order = "d"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(order + "|" + c.At.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

// ParseCursor reads a cursor written by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, err
	}
	parts := strings.SplitN(string(b), "|", 3)
	if len(parts) != 3 || parts[2] == "" || parts[0] != "a" && parts[0] != "d" {
		return Cursor{}, errors.New("bad cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, parts[1])
	if err != nil {
		return Cursor{}, err
	}
	return Cursor{At: t, ID: parts[2], Desc: parts[0] == "d"}, nil
}
