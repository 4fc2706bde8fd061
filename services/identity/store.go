package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/postgres"
	"github.com/switchyard/switchyard/services/identity/migrations"
)

// Migrate applies the identity service's migrations (their one home is the
// leaf package migrations, which `switchyard migrate` applies too).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return migrations.Migrate(ctx, pool)
}

// Link kinds.
const (
	LinkStripeCustomer = "stripe_customer"
	LinkEmail          = "email"
	LinkCharge         = "charge"
	LinkInvoice        = "invoice"
	LinkSubscription   = "subscription"
	LinkPaymentIntent  = "payment_intent"
	LinkCRMContact     = "crm_contact"
	LinkSupportUser    = "support_user"
)

// Identifier is one (kind, value) pair that names a customer.
type Identifier struct{ Kind, Value string }

// strength orders identifiers for choosing the one a new canonical id is
// derived from: the Stripe customer is the billing source of truth.
var strength = map[string]int{LinkStripeCustomer: 0, LinkEmail: 1, LinkSubscription: 2, LinkInvoice: 3, LinkCharge: 4, LinkPaymentIntent: 5, LinkCRMContact: 6, LinkSupportUser: 7}

// CanonicalID derives a customer's id from its strongest identifier, so that
// replaying the same events into an empty database yields the same ids.
func CanonicalID(id Identifier) string {
	sum := sha256.Sum256([]byte(id.Kind + ":" + id.Value))
	return "cust_" + hex.EncodeToString(sum[:12])
}

// Store is the identity service's PostgreSQL state.
type Store struct {
	pool    *pgxpool.Pool
	planned atomic.Int64 // events a batch's plan resolved (see storeplan.go)
}

// NewStore returns a Store over pool (migrated).
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Resolution is what Resolve found or made.
type Resolution struct {
	CanonicalID       string
	Created           bool     // a new canonical customer was made
	Merged            []string // canonical ids merged into CanonicalID
	StripeCustomerIDs []string // all linked, sorted
	StripeCustomerID  string   // the one linked most recently known for the event
	Email, Name       string
	Stale             bool // a newer version of the event's object was applied before
	Changed           bool // identity data (links, email, name) changed
}

// Version is the object version an event carries.
type Version struct {
	ObjectID string
	Created  int64
	EventID  string
	// Status is the state the version carries: a subscription's status, a
	// customer's normalised email.
	Status string
	// AskOnTie makes Resolve return ErrVersionTie, changing nothing, when
	// the applied version has the same created second and another event
	// id: the caller then asks Stripe for the object's current state and
	// resolves again with StripeState set.
	AskOnTie bool
	// StripeState is the object's current state according to the Stripe
	// API (same meaning as Status); on a tie, the version matching it wins.
	StripeState string
}

// ErrVersionTie: see Version.AskOnTie.
var ErrVersionTie = errors.New("identity: same-second tie with the applied version of the object")

// Input is what Resolve needs from one event.
type Input struct {
	EventID string
	IDs     []Identifier
	// Email is the Stripe Customer object's (normalised, valid): the only
	// source of a profile email. Never an email a payer typed.
	Email   string
	Name    string
	Version Version
	// Authoritative: the event's object is the customer itself (versioned),
	// so its email and name replace the profile's. Other events, the signup
	// checkout included, only fill empty fields: an old invoice's
	// customer_email must not undo a newer customer.updated.
	Authoritative bool
	// GuestCharge lets the event's charge found a customer of its own,
	// unlinked to anyone, when Stripe has confirmed the charge belongs to no
	// Stripe customer and none of its links (invoice, payment intent)
	// resolves: a guest payment's dispute still needs its ticket. Whatever
	// email the charge carries never joins it to an existing customer.
	GuestCharge bool
}

// Resolve links ids to one canonical customer with profile data from an
// authoritative event; see ResolveInput.
func (s *Store) Resolve(ctx context.Context, eventID string, ids []Identifier, email, name string, v Version) (Resolution, error) {
	return s.ResolveInput(ctx, Input{EventID: eventID, IDs: ids, Email: email, Name: name, Version: v, Authoritative: true})
}

// ResolveInput links in.IDs to one canonical customer (creating or merging
// as needed), records profile data and the object version, all in one
// transaction. It returns ErrUnknownCustomer when none of the identifiers is
// known and none may found a customer, and ErrVersionTie as described on
// Version.AskOnTie.
//
// Rules: a Stripe customer id decides — the customer linked to it, or a new
// one derived from it. Customers known only by weaker identifiers are
// merged into that one: a guest charge's customer whose invoice or payment
// intent turns out to be the Stripe customer's, or a customer an email
// founded before identity took emails from Customer objects only. Two customers linked to different
// Stripe customers are never merged: the pair is recorded in
// suspected_duplicates and each keeps its own links.
func (s *Store) ResolveInput(ctx context.Context, in Input) (Resolution, error) {
	// Two events of one customer resolved at once may lock its rows in
	// opposite orders (a merge chain, a customer created by the other): the
	// loser of a deadlock is retried here at once rather than redelivered
	// after the consumer's backoff.
	return retryConflicts(func() (Resolution, error) { return s.resolveOnce(ctx, in) })
}

// retryConflicts runs a transaction f again, at once and up to five
// times, while it loses a deadlock or a serialization conflict.
func retryConflicts[T any](f func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := f()
		var pgErr *pgconn.PgError
		if attempt == 5 || !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			return v, err
		}
	}
}

// resolveOnce runs one resolution transaction. BEGIN travels in the first
// round trip and COMMIT in the last (the transaction is opened and closed
// by statements in the pipeline rather than by round trips of their own);
// any failure rolls it back, and a connection left in doubt is dropped by
// the pool on release.
func (s *Store) resolveOnce(ctx context.Context, in Input) (Resolution, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return Resolution{}, err
	}
	defer conn.Release()
	defer postgres.RollbackOpen(ctx, conn.Conn())
	return resolveTx(ctx, conn.Conn(), in)
}

// querier is what a resolution runs on: a transaction, or a connection
// whose transaction the pipeline opens and closes itself.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// ErrUnknownCustomer: the event names no identifier that can found a
// customer (say a dispute whose charge was never seen) and none is linked.
var ErrUnknownCustomer = errors.New("identity: no known or founding identifier for this event")

// resolveTx resolves in on conn, a connection with no transaction open.
// The transaction is pipelined: BEGIN travels with the first round trip
// and COMMIT with the last (the caller rolls back on an error). The steps,
// each a round trip or a few:
//
//  1. lookUp: BEGIN, lock the identifiers, look up their links, lock the
//     customers they lead to and the applied version of the event's object
//     (one round trip);
//  2. lockCustomers: follow a merged customer found to its root (a round
//     trip per merge followed);
//  3. choose: pick the customer the event resolves to (one query when
//     several customers meet and the event names no Stripe customer);
//  4. ensureChosen: create it, or lock it, if no link led to it;
//  5. joinOthers: merge the other customers found into it, or record them
//     as suspected duplicates;
//  6. finish: link the identifiers nobody had (one statement), record the
//     object's version (or find the event stale), apply the profile, read
//     the resolution back, COMMIT (one round trip).
//
// On an error it returns what it had resolved so far with the error.
func resolveTx(ctx context.Context, conn querier, in Input) (Resolution, error) {
	return resolve(ctx, &resolver{tx: conn, in: in, ids: dedupe(in.IDs)})
}

// resolve runs r's steps in order. A batch's resolution may have been
// looked up already, in its predecessor's last round trip (see finish).
func resolve(ctx context.Context, r *resolver) (Resolution, error) {
	if !r.lookedUp {
		if err := r.lookUp(ctx); err != nil {
			return r.res, err
		}
	} else if r.lookUpErr != nil {
		return r.res, r.lookUpErr
	}
	if err := r.lockCustomers(ctx); err != nil {
		return r.res, err
	}
	if err := r.choose(ctx); err != nil {
		return r.res, err
	}
	if err := r.ensureChosen(ctx); err != nil {
		return r.res, err
	}
	if err := r.joinOthers(ctx); err != nil {
		return r.res, err
	}
	return r.res, r.finish(ctx)
}

// resolver is the state of one resolution, filled in by resolveTx's steps
// in order.
type resolver struct {
	tx querier
	in Input
	// inBatch: the resolution is one of a batch's (ResolveBatch), whose
	// transaction is open and holds its identifiers' locks already: no
	// BEGIN, no locks and no COMMIT of its own.
	inBatch bool
	ids     []Identifier // in.IDs without empties and repeats, sorted

	// A batch's resolutions are chained (see Store.batchTxOnce): next, the
	// batch's next resolution, is looked up in this one's finish, and the
	// batch's last commits in its finish (commit).
	next   *resolver
	commit bool
	// lookedUp: lookUp's statements have been answered (lookUpErr their
	// error), in a round trip of another step's.
	lookedUp  bool
	lookUpErr error

	// Set by lookUp.
	found   []string // per ids: the customer linked to it, "" if none
	applied *Version // the object's applied version; nil if none (or no object)
	// lockedAt: the customers found, locked, each with the customer it was
	// merged into (nil: none, it is its own root).
	lockedAt map[string]*string

	// Set by lockCustomers.
	linked map[Identifier]string // identifier → the root of its customer
	known  []string              // the roots found, each once, in ids order

	// Set by choose.
	stripeID *Identifier // the event's Stripe customer; nil if none

	// stripeLinked says which known customers have a Stripe customer: read
	// on first use (see isStripeLinked).
	stripeLinked map[string]bool

	res Resolution
}

// lookUp is the first round trip: BEGIN; lock every identifier
// (serialising all transactions that touch any of them; in key order, so
// never crosswise); look them up; and read the applied version of the
// event's object. The object is one of the identifiers (its subscription
// or customer id), so whoever locks its version row holds that
// identifier's lock first. The locks and the lookups are one statement
// each, whatever the number of identifiers: every statement costs
// PostgreSQL and identity a bind and execute of its own.
func (r *resolver) lookUp(ctx context.Context) error {
	batch := &pgx.Batch{}
	r.queueLookUp(batch)
	br := r.tx.SendBatch(ctx, batch)
	if err := r.readLookUp(br); err != nil {
		_ = br.Close()
		return err
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("look up identifiers: %w", err)
	}
	return nil
}

// queueLookUp queues lookUp's statements on batch.
func (r *resolver) queueLookUp(batch *pgx.Batch) {
	if !r.inBatch {
		batch.Queue("BEGIN")
	}
	keys := make([]int64, len(r.ids))
	kinds := make([]string, len(r.ids))
	values := make([]string, len(r.ids))
	for i, id := range r.ids {
		keys[i], kinds[i], values[i] = lockKey(id), id.Kind, id.Value
	}
	if len(r.ids) > 0 {
		if !r.inBatch {
			batch.Queue(lockIdentifiersSQL, keys)
		}
		// A subselect per identifier, not a join: one probe of the primary
		// key each, where a join's plan may hash a scan of the whole table
		// (a small or never analysed one: 40 pages per event in
		// BenchmarkHandle, against 3 per identifier). generate_subscripts,
		// not unnest: PostgreSQL estimates unnest's rows from the array
		// it is given, so a plan for the actual arrays always looked
		// cheaper than the prepared statement's generic one and the
		// lookup was planned anew on every event.
		batch.Queue(`SELECT coalesce(`+linkProbe+`, '')
			FROM generate_subscripts($1::text[], 1) i ORDER BY i`, kinds, values)
	}
	if r.in.Version.ObjectID != "" {
		batch.Queue(`SELECT created, event_id, status FROM object_versions WHERE object_id = $1 FOR UPDATE`, r.in.Version.ObjectID)
	}
	if len(r.ids) > 0 {
		// The customers found, locked in id order (ORDER BY sorts before
		// FOR UPDATE locks) with where each was merged to: lockCustomers'
		// first locks, without a round trip of their own. After the
		// object's version row, as every resolution locks them (a customer
		// is also locked later, by ensureChosen and merges), so two never
		// wait for each other crosswise. "= ANY(ARRAY(…))", not "IN (…)":
		// the prepared statement's generic plan for IN hashed a scan of
		// every customer (77 ms at 66k customers), = ANY probes the
		// primary key.
		batch.Queue(`SELECT c.canonical_id, c.merged_into FROM customers c
			WHERE c.canonical_id = ANY(ARRAY(SELECT `+linkProbe+`
				FROM generate_subscripts($1::text[], 1) i))
			ORDER BY c.canonical_id FOR UPDATE OF c`, kinds, values)
	}
}

// readLookUp reads lookUp's answers, in the order it queued them.
func (r *resolver) readLookUp(br pgx.BatchResults) error {
	if !r.inBatch {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
	}
	r.found = make([]string, len(r.ids))
	if len(r.ids) > 0 {
		if !r.inBatch {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("lock identifiers: %w", err)
			}
		}
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("look up identifiers: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("look up identifiers: %w", err)
		}
		if len(found) != len(r.ids) {
			return fmt.Errorf("look up identifiers: %d answers for %d identifiers", len(found), len(r.ids))
		}
		r.found = found
	}
	if r.in.Version.ObjectID != "" {
		var cur Version
		err := br.QueryRow().Scan(&cur.Created, &cur.EventID, &cur.Status)
		switch {
		case err == nil:
			r.applied = &cur
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("object version: %w", err)
		}
	}
	if len(r.ids) == 0 {
		return nil
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("lock customers: %w", err)
	}
	r.lockedAt = map[string]*string{}
	var cid string
	var mergedInto *string
	if _, err := pgx.ForEachRow(rows, []any{&cid, &mergedInto}, func() error {
		r.lockedAt[cid] = mergedInto
		mergedInto = nil
		return nil
	}); err != nil {
		return fmt.Errorf("lock customers: %w", err)
	}
	return nil
}

// linkProbe is the customer identifier i ($1 its kinds, $2 its values)
// is linked to, by one probe of customer_links' primary key: the lookup's
// answer, and the customers its lock takes.
const linkProbe = `(SELECT l.canonical_id FROM customer_links l WHERE l.kind = ($1::text[])[i] AND l.value = ($2::text[])[i])`

// lockIdentifiersSQL takes the advisory locks of identifiers ($1, their
// lockKeys) in key order, so two transactions never take them crosswise.
const lockIdentifiersSQL = `SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT k FROM unnest($1::bigint[]) k ORDER BY k) locks`

// lockKey is an identifier's advisory lock. Its hashing must not change:
// replicas of another version take the same keys.
func lockKey(id Identifier) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id.Kind + ":" + id.Value))
	return int64(h.Sum64())
}

// lockCustomers holds each customer found locked once (a row this
// transaction has locked cannot be merged away under it), in id order so
// that two events naming the same customers lock them the same way round —
// lookUp has locked them already, as it found them — and follows each to
// the customer it was merged into, locking that too: linked and known hold
// these roots. A customer lookUp found but did not lock — a merge
// committed between its lookup and its lock moved the link — is locked
// here.
func (r *resolver) lockCustomers(ctx context.Context) error {
	roots := map[string]string{} // customer found → its root, locked
	for _, cid := range r.found {
		if cid != "" {
			roots[cid] = ""
		}
	}
	for _, cid := range slices.Sorted(maps.Keys(roots)) {
		from := cid
		if next, locked := r.lockedAt[cid]; locked {
			if next == nil {
				roots[cid] = cid // locked by lookUp, and not merged
				continue
			}
			from = *next // locked by lookUp: follow its merge from there
		}
		root, err := lockRoot(ctx, r.tx, from)
		if err != nil {
			return err
		}
		roots[cid] = root
	}
	r.linked = map[Identifier]string{}
	for i, id := range r.ids {
		if r.found[i] == "" {
			continue
		}
		root := roots[r.found[i]]
		r.linked[id] = root
		if !slices.Contains(r.known, root) {
			r.known = append(r.known, root)
		}
	}
	return nil
}

// choose picks the customer the event resolves to (res.CanonicalID): a
// Stripe customer id decides — the customer linked to it, or a new one
// derived from it. Without one, the customers found decide (see
// chooseAmongKnown); with none found, a new customer derived from the
// event's founding identifier, or ErrUnknownCustomer if it has none.
func (r *resolver) choose(ctx context.Context) error {
	for i := range r.ids {
		if r.ids[i].Kind == LinkStripeCustomer {
			r.stripeID = &r.ids[i]
		}
	}
	switch {
	case r.stripeID != nil && r.linked[*r.stripeID] != "":
		r.res.CanonicalID = r.linked[*r.stripeID]
	case r.stripeID != nil:
		r.res.CanonicalID = CanonicalID(*r.stripeID)
	case len(r.known) > 0:
		return r.chooseAmongKnown(ctx)
	default:
		founder, ok := founding(r.ids, r.in.GuestCharge)
		if !ok {
			return ErrUnknownCustomer
		}
		r.res.CanonicalID = CanonicalID(founder)
	}
	return nil
}

// chooseAmongKnown chooses, for an event that names no Stripe customer,
// the Stripe-linked customer it names (the smallest id if it names
// several), else the smallest id of those it names. A lone customer is
// chosen without asking whether it is Stripe-linked.
func (r *resolver) chooseAmongKnown(ctx context.Context) error {
	sorted := slices.Sorted(slices.Values(r.known))
	r.res.CanonicalID = sorted[0]
	if len(sorted) == 1 {
		return nil
	}
	for _, cid := range sorted {
		has, err := r.isStripeLinked(ctx, cid)
		if err != nil {
			return err
		}
		if has {
			r.res.CanonicalID = cid
			return nil
		}
	}
	return nil
}

// ensureChosen makes sure the chosen customer exists and this transaction
// holds its lock. A customer found is locked already; any other (derived
// from the event's Stripe customer or founding identifier) is created, or,
// if it exists, locked and followed to its root.
func (r *resolver) ensureChosen(ctx context.Context) error {
	if slices.Contains(r.known, r.res.CanonicalID) {
		return nil
	}
	tag, err := r.tx.Exec(ctx, `INSERT INTO customers (canonical_id) VALUES ($1) ON CONFLICT DO NOTHING`, r.res.CanonicalID)
	if err != nil {
		return fmt.Errorf("create customer: %w", err)
	}
	r.res.Created = tag.RowsAffected() == 1
	if r.res.Created {
		return nil
	}
	r.res.CanonicalID, err = lockRoot(ctx, r.tx, r.res.CanonicalID)
	return err
}

// joinOthers joins every other customer found to the chosen one: it is
// merged in, unless both belong to Stripe customers (see keepApart).
func (r *resolver) joinOthers(ctx context.Context) error {
	for _, cid := range r.known {
		if cid == r.res.CanonicalID {
			continue
		}
		both, err := r.bothStripeLinked(ctx, cid)
		if err != nil {
			return err
		}
		if both {
			err = r.keepApart(ctx, cid)
		} else {
			err = merge(ctx, r.tx, cid, r.res.CanonicalID, r.in.EventID)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// bothStripeLinked reports whether customer cid and the chosen customer
// both have a Stripe customer. The chosen one has when the event names
// its Stripe customer; it is asked about only when cid has one.
func (r *resolver) bothStripeLinked(ctx context.Context, cid string) (bool, error) {
	has, err := r.isStripeLinked(ctx, cid)
	if err != nil || !has {
		return false, err
	}
	if r.stripeID != nil {
		return true, nil
	}
	return r.isStripeLinked(ctx, r.res.CanonicalID)
}

// isStripeLinked reports whether known customer cid has a Stripe customer.
// The first call asks for all known customers in one query: only events
// where two customers meet ask at all.
func (r *resolver) isStripeLinked(ctx context.Context, cid string) (bool, error) {
	if r.stripeLinked == nil {
		rows, err := r.tx.Query(ctx, `SELECT DISTINCT canonical_id FROM customer_links WHERE canonical_id = ANY($1) AND kind = 'stripe_customer'`, r.known)
		if err != nil {
			return false, fmt.Errorf("stripe links: %w", err)
		}
		has, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return false, fmt.Errorf("stripe links: %w", err)
		}
		r.stripeLinked = map[string]bool{}
		for _, c := range has {
			r.stripeLinked[c] = true
		}
	}
	return r.stripeLinked[cid], nil
}

// keepApart handles customer cid and the chosen customer when both belong
// to Stripe customers: they are never merged automatically, and the pair
// is recorded in suspected_duplicates. The event's Stripe customer owns
// the Stripe objects the event names (a subscription, invoice or charge
// has one customer): a link an email-only event gave cid moves to the
// chosen customer. Only the shared email stays with its first owner.
func (r *resolver) keepApart(ctx context.Context, cid string) error {
	a, b := min(cid, r.res.CanonicalID), max(cid, r.res.CanonicalID)
	if _, err := r.tx.Exec(ctx, `INSERT INTO suspected_duplicates (customer_a, customer_b, event_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, a, b, r.in.EventID); err != nil {
		return fmt.Errorf("record suspected duplicate: %w", err)
	}
	if r.stripeID == nil {
		return nil
	}
	for id, root := range r.linked {
		if root != cid || id.Kind == LinkEmail || id.Kind == LinkStripeCustomer {
			continue
		}
		if _, err := r.tx.Exec(ctx, `UPDATE customer_links SET canonical_id = $1, source_event_id = $2 WHERE kind = $3 AND value = $4`, r.res.CanonicalID, r.in.EventID, id.Kind, id.Value); err != nil {
			return fmt.Errorf("move %s link: %w", id.Kind, err)
		}
		r.linked[id] = r.res.CanonicalID
	}
	return nil
}

// finish is the resolution's last round trip, one pipeline: the links
// no customer had, the object's version, the profile and the read back
// (and COMMIT, outside a batch). None of these writes needs another's
// answer before it is sent — the version's staleness is decided from
// what lookUp read under the object's lock, and the read back, run after
// them in the same transaction, sees them all — so they travel together
// instead of a round trip each.
//
// In a batch, the next resolution's lookUp travels in the same round trip
// (r.next): the server runs a pipeline's statements in order, so it looks
// up what this resolution wrote, and its statements need nothing this one
// answers. Its answers, or its error, wait in r.next for its resolve; an
// error of this resolution's own skips them (the batch is rolled back and
// resolved again, see resolveRange).
func (r *resolver) finish(ctx context.Context) error {
	stale, versionSQL, versionArgs, err := versionWrite(r.in.Version, r.applied)
	if err != nil {
		return err
	}
	r.res.Stale = stale
	batch := &pgx.Batch{}
	links := r.queueLinks(batch)
	if versionSQL != "" {
		batch.Queue(versionSQL, versionArgs...)
	}
	commit := !r.inBatch || r.commit
	update := queueProfile(batch, r.in, &r.res, commit)
	if r.next != nil {
		r.next.queueLookUp(batch)
	}
	br := r.tx.SendBatch(ctx, batch)
	defer func() { _ = br.Close() }()
	if links {
		if err := r.readLinks(br); err != nil {
			return err
		}
	}
	if versionSQL != "" {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("record object version: %w", err)
		}
	}
	if err := readProfile(br, r.in, &r.res, update, commit); err != nil {
		return err
	}
	if r.next != nil {
		r.next.lookedUp = true
		if r.next.lookUpErr = r.next.readLookUp(br); r.next.lookUpErr != nil {
			return nil // the next resolution's failure, not this one's
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("read resolution: %w", err)
	}
	return nil
}

// queueLinks queues the link of every identifier no customer had to the
// chosen one, in one statement, and reports whether it queued it.
func (r *resolver) queueLinks(batch *pgx.Batch) bool {
	var kinds, values []string
	for _, id := range r.ids {
		if _, ok := r.linked[id]; !ok {
			kinds, values = append(kinds, id.Kind), append(values, id.Value)
		}
	}
	if len(kinds) == 0 {
		return false
	}
	batch.Queue(`INSERT INTO customer_links (kind, value, canonical_id, source_event_id)
		SELECT kind, value, $3, $4 FROM unnest($1::text[], $2::text[]) AS n(kind, value)
		ON CONFLICT (kind, value) DO NOTHING RETURNING kind, value`, kinds, values, r.res.CanonicalID, r.in.EventID)
	return true
}

// readLinks reads queueLinks' answer: a new Stripe customer or email link
// changes the customer's identity data.
func (r *resolver) readLinks(br pgx.BatchResults) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("link identifiers: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Identifier])
	if err != nil {
		return fmt.Errorf("link identifiers: %w", err)
	}
	for _, id := range inserted {
		if id.Kind == LinkStripeCustomer || id.Kind == LinkEmail {
			r.res.Changed = true
		}
	}
	return nil
}

// lockRoot locks customer cid's row and follows merged_into to the customer
// that survived, locking that too: a merge committed by a concurrent
// transaction is seen here once its lock is released.
func lockRoot(ctx context.Context, tx querier, cid string) (string, error) {
	for range 16 {
		var next *string
		if err := tx.QueryRow(ctx, `SELECT merged_into FROM customers WHERE canonical_id = $1 FOR UPDATE`, cid).Scan(&next); err != nil {
			return "", fmt.Errorf("lock customer %s: %w", cid, err)
		}
		if next == nil {
			return cid, nil
		}
		cid = *next
	}
	return "", fmt.Errorf("merge chain from %s is longer than 16", cid)
}

// merge moves loser's links to survivor and records why.
func merge(ctx context.Context, tx querier, loser, survivor, eventID string) error {
	if _, err := tx.Exec(ctx, `UPDATE customer_links SET canonical_id = $1 WHERE canonical_id = $2`, survivor, loser); err != nil {
		return fmt.Errorf("merge links: %w", err)
	}
	// Flatten: customers merged into the loser earlier now point at the survivor.
	if _, err := tx.Exec(ctx, `UPDATE customers SET merged_into = $1, updated_at = now() WHERE canonical_id = $2 OR merged_into = $2`, survivor, loser); err != nil {
		return fmt.Errorf("merge customer: %w", err)
	}
	// Keep the loser's profile where the survivor has none.
	if _, err := tx.Exec(ctx, `UPDATE customers s SET
			email = CASE WHEN s.email = '' THEN l.email ELSE s.email END,
			name  = CASE WHEN s.name  = '' THEN l.name  ELSE s.name  END
		FROM customers l WHERE s.canonical_id = $1 AND l.canonical_id = $2`, survivor, loser); err != nil {
		return fmt.Errorf("merge profile: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO customer_merges (loser, survivor, event_id) VALUES ($1, $2, $3)
		ON CONFLICT (loser) DO UPDATE SET survivor = EXCLUDED.survivor`, loser, survivor, eventID); err != nil {
		return fmt.Errorf("record merge: %w", err)
	}
	return nil
}

// queueProfile queues the event's email and name (an authoritative,
// current event replaces them, any other only fills empty fields; res.Stale
// is decided) and the read back of the customer's profile, Stripe
// customers and the merges this event made (also when it is redelivered
// after a crash), then COMMIT if commit. Both lists are sorted bytewise
// (COLLATE "C"), whatever the database's collation: a batch's plan sorts
// them in Go. The read back is one statement:
// each costs PostgreSQL and identity a bind and execute. It reports
// whether it queued the update.
func queueProfile(batch *pgx.Batch, in Input, res *Resolution, commit bool) bool {
	update := in.Email != "" || in.Name != ""
	if update {
		replace := in.Authoritative && !res.Stale
		batch.Queue(`UPDATE customers SET
			email = CASE WHEN $2 <> '' AND ($4 OR email = '') THEN $2 ELSE email END,
			name  = CASE WHEN $3 <> '' AND ($4 OR name = '')  THEN $3 ELSE name END,
			updated_at = now()
		WHERE canonical_id = $1 AND (($2 <> '' AND email <> $2 AND ($4 OR email = '')) OR ($3 <> '' AND name <> $3 AND ($4 OR name = '')))`,
			res.CanonicalID, in.Email, in.Name, replace)
	}
	batch.Queue(`SELECT c.email, c.name,
			coalesce((SELECT array_agg(l.value ORDER BY l.value COLLATE "C") FROM customer_links l WHERE l.canonical_id = c.canonical_id AND l.kind = $2), '{}'),
			coalesce((SELECT array_agg(m.loser ORDER BY m.loser COLLATE "C") FROM customer_merges m WHERE m.event_id = $3), '{}')
		FROM customers c WHERE c.canonical_id = $1`, res.CanonicalID, LinkStripeCustomer, in.EventID)
	if commit {
		batch.Queue("COMMIT")
	}
	return update
}

// readProfile reads queueProfile's answers, in the order it queued them.
func readProfile(br pgx.BatchResults, in Input, res *Resolution, update, commit bool) error {
	if update {
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("update profile: %w", err)
		}
		if tag.RowsAffected() > 0 {
			res.Changed = true
		}
	}
	if err := br.QueryRow().Scan(&res.Email, &res.Name, &res.StripeCustomerIDs, &res.Merged); err != nil {
		return fmt.Errorf("read profile: %w", err)
	}
	if res.StripeCustomerIDs == nil {
		res.StripeCustomerIDs = []string{}
	}
	if res.Merged == nil {
		res.Merged = []string{}
	}
	if commit {
		if err := postgres.ReadCommit(br); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	res.StripeCustomerID = eventStripeCustomer(in, res.StripeCustomerIDs)
	return nil
}

// eventStripeCustomer is the Stripe customer a resolution reports: the
// event's own (the last it names), else the first its customer has.
func eventStripeCustomer(in Input, linked []string) string {
	var cus string
	for _, id := range in.IDs {
		if id.Kind == LinkStripeCustomer && id.Value != "" {
			cus = id.Value
		}
	}
	if cus == "" && len(linked) > 0 {
		cus = linked[0]
	}
	return cus
}

// founding picks the identifier a new customer is created from: a Stripe
// customer id or an email; a charge only for a confirmed guest payment.
func founding(ids []Identifier, guestCharge bool) (Identifier, bool) {
	var best Identifier
	ok := false
	for _, id := range ids {
		allowed := id.Kind == LinkStripeCustomer || id.Kind == LinkEmail || (guestCharge && id.Kind == LinkCharge)
		if !allowed {
			continue
		}
		if !ok || strength[id.Kind] < strength[best.Kind] {
			best, ok = id, true
		}
	}
	return best, ok
}

// statusRank orders statuses for same-second ties: later stages of an
// object's life win, so a tie never moves it backwards.
var statusRank = map[string]int{
	"incomplete": 1, "trialing": 2, "active": 3, "past_due": 4, "unpaid": 5, "paused": 5,
	"incomplete_expired": 6, "canceled": 7,
	"draft": 1, "open": 2, "paid": 3, "uncollectible": 3, "void": 3,
	"pending": 1, "succeeded": 2, "failed": 2,
	"warning_needs_response": 1, "needs_response": 1, "warning_under_review": 2, "under_review": 2,
	"warning_closed": 3, "won": 3, "lost": 3, "charge_refunded": 3,
}

// versionWrite decides whether v is stale and, unless it is, the
// statement that records it (sql "" when there is nothing to write). A
// newer applied version makes v stale; re-applying the same event is not
// stale, so a redelivery derives the same domain events again.
//
// applied is the version recorded before, read under the object's lock
// (nil: none yet). No object: nothing to decide.
func versionWrite(v Version, applied *Version) (stale bool, sql string, args []any, err error) {
	if v.ObjectID == "" {
		return false, "", nil, nil
	}
	if applied == nil {
		return false, `INSERT INTO object_versions (object_id, created, event_id, status) VALUES ($1, $2, $3, $4)`, []any{v.ObjectID, v.Created, v.EventID, v.Status}, nil
	}
	cur := *applied
	tie := v.Created == cur.Created && cur.EventID != v.EventID
	switch {
	case cur.EventID == v.EventID:
		return false, "", nil, nil
	case v.Created < cur.Created:
		return true, "", nil, nil
	case tie && v.StripeState == "" && v.AskOnTie:
		return false, "", nil, ErrVersionTie
	case tie && v.StripeState != "" && v.Status == v.StripeState && cur.Status != v.StripeState:
		// Stripe says this version is the current one: it wins.
	case tie && v.StripeState != "" && cur.Status == v.StripeState && v.Status != v.StripeState:
		return true, "", nil, nil // Stripe says the applied version is the current one
	case tie && statusRank[v.Status] < statusRank[cur.Status]:
		return true, "", nil, nil
	case tie && statusRank[v.Status] == statusRank[cur.Status] && v.EventID < cur.EventID:
		return true, "", nil, nil // a full tie: the larger event id wins, the same way in every order
	}
	return false, `UPDATE object_versions SET created = $2, event_id = $3, status = $4 WHERE object_id = $1`, []any{v.ObjectID, v.Created, v.EventID, v.Status}, nil
}

func dedupe(ids []Identifier) []Identifier {
	seen := map[Identifier]bool{}
	var out []Identifier
	for _, id := range ids {
		if id.Value == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	// A fixed order, so that a resolution's steps go the same way whatever
	// order the event named its identifiers in (the locks are taken in key
	// order: see lookUp).
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// LinkExternal records an identifier another system gave the customer (a
// CRM contact id, a support user id), idempotently. A link already held by
// another customer is left alone and reported as false, with that owner.
// A customer merged away has its survivor linked; an unknown one is
// pgx.ErrNoRows.
func (s *Store) LinkExternal(ctx context.Context, canonicalID string, id Identifier, sourceEventID string) (linked bool, owner string, err error) {
	out, err := s.LinkExternals(ctx, []ExternalLink{{CanonicalID: canonicalID, ID: id, SourceEventID: sourceEventID}})
	if err != nil {
		return false, "", err
	}
	return out[0].Linked, out[0].Owner, out[0].Err
}

// ExternalLink asks LinkExternals to link ID to customer CanonicalID.
type ExternalLink struct {
	CanonicalID   string
	ID            Identifier
	SourceEventID string
}

// LinkOutcome is LinkExternals' answer for one ExternalLink, as
// LinkExternal's: linked, or refused with the owner, or Err.
type LinkOutcome struct {
	Linked bool
	Owner  string
	Err    error
}

// LinkExternals is LinkExternal for a set, as a consumer's pull brings
// them, answering as linking them one after another in the set's order
// would, in two round trips rather than a transaction each:
//   - one read answers every link already there whose customer still
//     stands (every later sync of a contact): no lock, no commit;
//   - the rest are linked in one transaction (linkSet): their customers
//     locked in id order, the links inserted in the set's order — of two
//     customers naming one new id, the first takes it and the second is
//     refused — their owners read, one commit.
//
// A link whose customer the read found merged away or unknown is left to
// a transaction of its own afterwards (linkFollowingMerges), which links
// the survivor or reports pgx.ErrNoRows in its LinkOutcome; so is every
// later link of the same id, so that the order holds. The error is the
// set's: the read or the shared transaction failed, and nothing of it was
// committed.
func (s *Store) LinkExternals(ctx context.Context, in []ExternalLink) ([]LinkOutcome, error) {
	out := make([]LinkOutcome, len(in))
	kinds, values, cids := make([]string, len(in)), make([]string, len(in)), make([]string, len(in))
	for i, l := range in {
		kinds[i], values[i], cids[i] = l.ID.Kind, l.ID.Value, l.CanonicalID
	}
	// Subselects, each a probe of a primary key (see lookUp on why not a
	// join: its plan scanned both tables); OFFSET 0 keeps the owner's
	// probe from being pulled up and run twice.
	rows, err := s.pool.Query(ctx, `SELECT coalesce(o.owner, ''),
			coalesce((SELECT c.merged_into IS NOT NULL FROM customers c WHERE c.canonical_id = o.owner), false),
			coalesce((SELECT c.merged_into IS NULL FROM customers c WHERE c.canonical_id = ($3::text[])[o.i]), false)
		FROM (SELECT i, `+linkProbe+` AS owner FROM generate_subscripts($1::text[], 1) i OFFSET 0) o
		ORDER BY o.i`, kinds, values, cids)
	if err != nil {
		return nil, fmt.Errorf("read links: %w", err)
	}
	var pending, alone []int
	aloneIDs := map[Identifier]bool{}
	var owner string
	var ownerMerged, standing bool
	i := 0
	_, err = pgx.ForEachRow(rows, []any{&owner, &ownerMerged, &standing}, func() error {
		switch l := in[i]; {
		case owner == l.CanonicalID && !ownerMerged:
			out[i] = LinkOutcome{Linked: true, Owner: owner}
		case !standing || aloneIDs[l.ID]:
			alone, aloneIDs[l.ID] = append(alone, i), true
		default:
			pending = append(pending, i)
		}
		i++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read links: %w", err)
	}
	if len(pending) > 0 {
		// A customer merged since the read is left alone too: a merge
		// racing the link has no order to keep.
		fell, err := retryConflicts(func() ([]int, error) { return s.linkSet(ctx, in, pending, out) })
		if err != nil {
			return nil, err
		}
		alone = append(alone, fell...)
		slices.Sort(alone)
	}
	for _, i := range alone {
		l := in[i]
		out[i].Linked, out[i].Owner, out[i].Err = s.linkFollowingMerges(ctx, l.CanonicalID, l.ID, l.SourceEventID)
	}
	return out, nil
}

// linkSet is LinkExternals' transaction for the links in[pending], in one
// round trip: BEGIN, lock their customers in id order (ORDER BY sorts
// before FOR UPDATE locks), insert the links of customers not merged away
// in pending's order, read every owner, COMMIT. It sets their outcomes in
// out and returns those it left alone: a customer unknown or merged away.
func (s *Store) linkSet(ctx context.Context, in []ExternalLink, pending []int, out []LinkOutcome) (alone []int, err error) {
	kinds, values := make([]string, len(pending)), make([]string, len(pending))
	cids, sources := make([]string, len(pending)), make([]string, len(pending))
	for j, i := range pending {
		kinds[j], values[j], cids[j], sources[j] = in[i].ID.Kind, in[i].ID.Value, in[i].CanonicalID, in[i].SourceEventID
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	c := conn.Conn()
	defer postgres.RollbackOpen(ctx, c)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(`SELECT canonical_id FROM customers WHERE canonical_id = ANY($1::text[]) AND merged_into IS NULL
		ORDER BY canonical_id FOR UPDATE`, cids)
	b.Queue(`INSERT INTO customer_links (kind, value, canonical_id, source_event_id)
		SELECT ($1::text[])[i], ($2::text[])[i], ($3::text[])[i], ($4::text[])[i] FROM generate_subscripts($1::text[], 1) i
		WHERE ($3::text[])[i] = ANY(ARRAY(SELECT canonical_id FROM customers WHERE canonical_id = ANY($3::text[]) AND merged_into IS NULL))
		ORDER BY i
		ON CONFLICT (kind, value) DO NOTHING`, kinds, values, cids, sources)
	b.Queue(`SELECT coalesce(`+linkProbe+`, '') FROM generate_subscripts($1::text[], 1) i ORDER BY i`, kinds, values)
	b.Queue("COMMIT")
	br := c.SendBatch(ctx, b)
	defer func() { _ = br.Close() }()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("link: begin: %w", err)
	}
	standing := make(map[string]bool, len(pending))
	var cid string
	rows, _ := br.Query() // its error is the rows' too
	if _, err := pgx.ForEachRow(rows, []any{&cid}, func() error { standing[cid] = true; return nil }); err != nil {
		return nil, fmt.Errorf("link: lock customers: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	owners := make([]string, 0, len(pending))
	var owner string
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&owner}, func() error { owners = append(owners, owner); return nil }); err != nil {
		return nil, fmt.Errorf("link: read owners: %w", err)
	}
	if err := postgres.ReadCommit(br); err != nil {
		return nil, fmt.Errorf("link: commit: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, err
	}
	for j, i := range pending {
		switch {
		case !standing[cids[j]]:
			alone = append(alone, i)
		case owners[j] == "":
			// The customer stood locked and its link went in or was
			// there: no owner is a bug, not a refusal.
			out[i].Err = fmt.Errorf("link %s: no owner after linking customer %s", kinds[j], cids[j])
		default:
			out[i] = LinkOutcome{Linked: owners[j] == cids[j], Owner: owners[j]}
		}
	}
	return alone, nil
}

// linkFollowingMerges links id to customer canonicalID, or, merged away,
// to its survivor: merges are flattened, so that is one more try at most,
// but a merge racing this one may add another.
func (s *Store) linkFollowingMerges(ctx context.Context, canonicalID string, id Identifier, sourceEventID string) (linked bool, owner string, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, "", err
	}
	defer conn.Release()
	c := conn.Conn()
	defer postgres.RollbackOpen(ctx, c)
	cid := canonicalID
	for range 16 {
		linked, owner, next, err := linkUnmerged(ctx, c, cid, id, sourceEventID)
		if err != nil || next == "" {
			return linked, owner, err
		}
		cid = next
	}
	return false, "", fmt.Errorf("link %s: merge chain from %s is longer than 16", id.Kind, canonicalID)
}

// linkUnmerged is one step of linkFollowingMerges in one round trip: BEGIN, lock
// customer cid, link id to it unless it was merged away, read who owns
// the link, COMMIT. The statements run one after another on the server, so
// the link is written only once the lock is held, and its condition,
// which reads afresh (READ COMMITTED), sees what the locked row says.
// mergedInto is the customer cid was merged into, "" if none: when set,
// nothing was linked, and the caller links that survivor.
func linkUnmerged(ctx context.Context, c *pgx.Conn, cid string, id Identifier, sourceEventID string) (linked bool, owner, mergedInto string, err error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(`SELECT merged_into FROM customers WHERE canonical_id = $1 FOR UPDATE`, cid)
	b.Queue(`INSERT INTO customer_links (kind, value, canonical_id, source_event_id)
		SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM customers WHERE canonical_id = $3 AND merged_into IS NULL)
		ON CONFLICT (kind, value) DO NOTHING`, id.Kind, id.Value, cid, sourceEventID)
	b.Queue(`SELECT coalesce((SELECT canonical_id FROM customer_links WHERE kind = $1 AND value = $2), '')`, id.Kind, id.Value)
	b.Queue("COMMIT")
	br := c.SendBatch(ctx, b)
	defer func() { _ = br.Close() }()
	var next *string
	if _, err = br.Exec(); err == nil {
		err = br.QueryRow().Scan(&next)
	}
	if err != nil {
		return false, "", "", fmt.Errorf("lock customer %s: %w", cid, err)
	}
	if _, err := br.Exec(); err != nil {
		return false, "", "", fmt.Errorf("link %s: %w", id.Kind, err)
	}
	if err := br.QueryRow().Scan(&owner); err != nil {
		return false, "", "", fmt.Errorf("link %s: %w", id.Kind, err)
	}
	if err := postgres.ReadCommit(br); err != nil {
		return false, "", "", fmt.Errorf("link %s: commit: %w", id.Kind, err)
	}
	if next != nil {
		return false, "", *next, br.Close()
	}
	return owner == cid, owner, "", br.Close()
}
