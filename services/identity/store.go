package identity

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/switchyard/switchyard/platform/postgres"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the identity service's migrations.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := postgres.LoadMigrations(migrations, "migrations")
	if err != nil {
		return err
	}
	_, err = postgres.Migrate(ctx, pool, "identity", ms)
	return err
}

// Link kinds.
const (
	LinkStripeCustomer = "stripe_customer"
	LinkEmail          = "email"
	LinkCharge         = "charge"
	LinkInvoice        = "invoice"
	LinkSubscription   = "subscription"
	LinkCRMContact     = "crm_contact"
	LinkSupportUser    = "support_user"
)

// Identifier is one (kind, value) pair that names a customer.
type Identifier struct{ Kind, Value string }

// strength orders identifiers for choosing the one a new canonical id is
// derived from: the Stripe customer is the billing source of truth.
var strength = map[string]int{LinkStripeCustomer: 0, LinkEmail: 1, LinkSubscription: 2, LinkInvoice: 3, LinkCharge: 4, LinkCRMContact: 5, LinkSupportUser: 6}

// CanonicalID derives a customer's id from its strongest identifier, so that
// replaying the same events into an empty database yields the same ids.
func CanonicalID(id Identifier) string {
	sum := sha256.Sum256([]byte(id.Kind + ":" + id.Value))
	return "cust_" + hex.EncodeToString(sum[:12])
}

// Store is the identity service's PostgreSQL state.
type Store struct{ pool *pgxpool.Pool }

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

// Resolve links ids to one canonical customer (creating or merging as
// needed), records profile data and the object version, all in one
// transaction. lookupOnly identifiers (a charge a dispute names) are used
// to find the customer but not required. It returns ErrUnknownCustomer when
// none of ids is known and none may create a customer.
func (s *Store) Resolve(ctx context.Context, eventID string, ids []Identifier, email, name string, v Version) (Resolution, error) {
	var res Resolution
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		res, err = resolveTx(ctx, tx, eventID, ids, email, name, v)
		return err
	})
	return res, err
}

// ErrUnknownCustomer: the event names no identifier that can found a
// customer (say a dispute whose charge was never seen) and none is linked.
var ErrUnknownCustomer = errors.New("identity: no known or founding identifier for this event")

func resolveTx(ctx context.Context, tx pgx.Tx, eventID string, ids []Identifier, email, name string, v Version) (Resolution, error) {
	var res Resolution
	ids = dedupe(ids)
	// Serialise every transaction touching any of these identifiers.
	for _, id := range ids {
		h := fnv.New64a()
		_, _ = h.Write([]byte(id.Kind + ":" + id.Value))
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
			return res, fmt.Errorf("lock identifiers: %w", err)
		}
	}
	found := map[string]bool{}
	var known []string
	linked := map[Identifier]bool{}
	for _, id := range ids {
		var cid string
		err := tx.QueryRow(ctx, `SELECT l.canonical_id FROM customer_links l WHERE l.kind = $1 AND l.value = $2`, id.Kind, id.Value).Scan(&cid)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("look up %s: %w", id.Kind, err)
		}
		linked[id] = true
		if !found[cid] {
			found[cid] = true
			known = append(known, cid)
		}
	}
	switch len(known) {
	case 0:
		founder, ok := founding(ids)
		if !ok {
			return res, ErrUnknownCustomer
		}
		res.CanonicalID, res.Created = CanonicalID(founder), true
		if _, err := tx.Exec(ctx, `INSERT INTO customers (canonical_id) VALUES ($1) ON CONFLICT DO NOTHING`, res.CanonicalID); err != nil {
			return res, fmt.Errorf("create customer: %w", err)
		}
	case 1:
		res.CanonicalID = known[0]
	default:
		survivor, err := chooseSurvivor(ctx, tx, known)
		if err != nil {
			return res, err
		}
		res.CanonicalID = survivor
		for _, cid := range known {
			if cid == survivor {
				continue
			}
			if _, err := tx.Exec(ctx, `UPDATE customer_links SET canonical_id = $1 WHERE canonical_id = $2`, survivor, cid); err != nil {
				return res, fmt.Errorf("merge links: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE customers SET merged_into = $1, updated_at = now() WHERE canonical_id = $2`, survivor, cid); err != nil {
				return res, fmt.Errorf("merge customer: %w", err)
			}
			res.Merged = append(res.Merged, cid)
		}
		res.Changed = true
	}
	for _, id := range ids {
		if linked[id] {
			continue
		}
		tag, err := tx.Exec(ctx, `INSERT INTO customer_links (kind, value, canonical_id, source_event_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, value) DO NOTHING`, id.Kind, id.Value, res.CanonicalID, eventID)
		if err != nil {
			return res, fmt.Errorf("link %s: %w", id.Kind, err)
		}
		if tag.RowsAffected() == 1 && (id.Kind == LinkStripeCustomer || id.Kind == LinkEmail) {
			res.Changed = true
		}
	}
	if v.ObjectID != "" {
		stale, err := applyVersion(ctx, tx, v)
		if err != nil {
			return res, err
		}
		res.Stale = stale
	}
	// Profile data from a stale version must not overwrite a newer one.
	if !res.Stale && (email != "" || name != "") {
		tag, err := tx.Exec(ctx, `UPDATE customers SET
				email = CASE WHEN $2 <> '' THEN $2 ELSE email END,
				name  = CASE WHEN $3 <> '' THEN $3 ELSE name END,
				updated_at = now()
			WHERE canonical_id = $1 AND (($2 <> '' AND email <> $2) OR ($3 <> '' AND name <> $3))`, res.CanonicalID, email, name)
		if err != nil {
			return res, fmt.Errorf("update profile: %w", err)
		}
		if tag.RowsAffected() > 0 {
			res.Changed = true
		}
	}
	if err := tx.QueryRow(ctx, `SELECT email, name FROM customers WHERE canonical_id = $1`, res.CanonicalID).Scan(&res.Email, &res.Name); err != nil {
		return res, fmt.Errorf("read profile: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT value FROM customer_links WHERE canonical_id = $1 AND kind = $2 ORDER BY value`, res.CanonicalID, LinkStripeCustomer)
	if err != nil {
		return res, err
	}
	res.StripeCustomerIDs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		if id.Kind == LinkStripeCustomer {
			res.StripeCustomerID = id.Value
		}
	}
	if res.StripeCustomerID == "" && len(res.StripeCustomerIDs) > 0 {
		res.StripeCustomerID = res.StripeCustomerIDs[0]
	}
	return res, nil
}

// founding picks the identifier a new customer is created from: only a
// Stripe customer id or an email can found one; an invoice or charge alone
// cannot (it must link to a customer we know).
func founding(ids []Identifier) (Identifier, bool) {
	var best Identifier
	ok := false
	for _, id := range ids {
		if id.Kind != LinkStripeCustomer && id.Kind != LinkEmail {
			continue
		}
		if !ok || strength[id.Kind] < strength[best.Kind] {
			best, ok = id, true
		}
	}
	return best, ok
}

// chooseSurvivor keeps, of several canonical customers found to be one, the
// one linked to a Stripe customer, else the oldest; ties by id.
func chooseSurvivor(ctx context.Context, tx pgx.Tx, ids []string) (string, error) {
	rows, err := tx.Query(ctx, `SELECT c.canonical_id,
			EXISTS (SELECT 1 FROM customer_links l WHERE l.canonical_id = c.canonical_id AND l.kind = 'stripe_customer'),
			c.created_at
		FROM customers c WHERE c.canonical_id = ANY($1)
		ORDER BY 2 DESC, 3, 1 LIMIT 1`, ids)
	if err != nil {
		return "", fmt.Errorf("choose survivor: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return "", fmt.Errorf("choose survivor: none of %v exists", ids)
	}
	var id string
	var hasStripe bool
	var created any
	if err := rows.Scan(&id, &hasStripe, &created); err != nil {
		return "", err
	}
	return id, nil
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

// applyVersion records v unless a newer version was applied; it reports
// whether v is stale. Re-applying the same event is not stale, so a
// redelivery derives the same domain events again.
func applyVersion(ctx context.Context, tx pgx.Tx, v Version) (bool, error) {
	var cur Version
	err := tx.QueryRow(ctx, `SELECT created, event_id, status FROM object_versions WHERE object_id = $1 FOR UPDATE`, v.ObjectID).
		Scan(&cur.Created, &cur.EventID, &cur.Status)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = tx.Exec(ctx, `INSERT INTO object_versions (object_id, created, event_id, status) VALUES ($1, $2, $3, $4)`, v.ObjectID, v.Created, v.EventID, v.Status)
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("object version: %w", err)
	}
	tie := v.Created == cur.Created && cur.EventID != v.EventID
	switch {
	case cur.EventID == v.EventID:
		return false, nil
	case v.Created < cur.Created:
		return true, nil
	case tie && v.StripeState == "" && v.AskOnTie:
		return false, ErrVersionTie
	case tie && v.StripeState != "" && v.Status == v.StripeState && cur.Status != v.StripeState:
		// Stripe says this version is the current one: it wins.
	case tie && v.StripeState != "" && cur.Status == v.StripeState && v.Status != v.StripeState:
		return true, nil // Stripe says the applied version is the current one
	case tie && statusRank[v.Status] < statusRank[cur.Status]:
		return true, nil
	case tie && statusRank[v.Status] == statusRank[cur.Status] && v.EventID < cur.EventID:
		return true, nil // a full tie: the larger event id wins, the same way in every order
	}
	_, err = tx.Exec(ctx, `UPDATE object_versions SET created = $2, event_id = $3, status = $4 WHERE object_id = $1`, v.ObjectID, v.Created, v.EventID, v.Status)
	return false, err
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
	// Locks are taken in this order: sort so two transactions never wait on
	// each other crosswise.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Value < out[j].Value
	})
	return out
}
