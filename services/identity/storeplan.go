package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// A batch's usual case is planned set-wise: one round trip reads what the
// batch's identifiers, customers and objects hold (batchState), the
// resolutions are decided in Go, in stream order, on that state as each
// resolution changes it (plan), and one round trip writes the outcome — a
// statement per table for the whole batch — and commits. Every statement
// costs PostgreSQL and identity a bind and execute of its own, so a batch
// of n events costs about ten statements instead of six or more per event.
//
// Only what is one customer's plain history is planned: the event's
// identifiers lead to at most one customer, which no merge has touched, and
// that is the customer the event resolves to. An event where customers
// meet (a merge, suspected duplicates) or whose customer was merged away
// ends the plan: it and the rest of the batch are resolved one by one
// (resolve), in the same transaction, after the plan's writes.

// errPlanDiverged: the plan's writes did not find the database as the plan
// read it (a row count differs) or PostgreSQL refused one for its data;
// the batch is resolved one by one instead, where such a failure is one
// event's.
var errPlanDiverged = errors.New("identity: the batch plan's writes diverged from what it read")

// batchState is what one round trip read for a batch, under its locks,
// and then what the plan made of it.
type batchState struct {
	links    map[Identifier]string // identifier → customer linked ("" none)
	versions map[string]*Version   // object id → applied version (absent: none)
	read     map[string]*Version   // object id → the version read (absent: none)
	custs    map[string]*planCustomer
	merges   map[string][]string // event id → the customers it merged (an earlier delivery)
	ids      [][]Identifier      // per planned input: its identifiers as dedupe gives them

	// The plan's writes, in the order made.
	created  []string // new customers
	newLinks []planLink
	objects  []string // objects whose version the plan recorded, each once
	profiles []string // existing customers whose email or name changed, each once
}

// planCustomer is one customer as the plan sees it.
type planCustomer struct {
	mergedInto  *string
	email, name string
	stripeIDs   []string // its Stripe customers, sorted bytewise
	created     bool     // by this plan
	dirty       bool     // email or name changed by this plan
}

type planLink struct {
	id       Identifier
	customer string
	eventID  string
}

// plannable is how many of ins, from the first, the plan may read and
// decide: up to the first that holds text PostgreSQL refuses (a NUL byte,
// invalid UTF-8). Resolved one by one, that event fails alone, as it
// would by itself: its text is sent even where the plan would not write it.
func plannable(ins []Input) int {
	for i, in := range ins {
		ok := pgText(in.EventID) && pgText(in.Email) && pgText(in.Name) && pgText(in.Version.ObjectID) &&
			pgText(in.Version.EventID) && pgText(in.Version.Status) && pgText(in.Version.StripeState)
		for _, id := range in.IDs {
			ok = ok && pgText(id.Kind) && pgText(id.Value)
		}
		if !ok {
			return i
		}
	}
	return len(ins)
}

// pgText reports whether PostgreSQL takes s as text.
func pgText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// readBatchState is the plan's first round trip: BEGIN, the lock of every
// identifier of ins in key order (as lockBatch), and, for ins[:n], the
// links, the applied versions and the customers they lead to, locked.
// Locks are taken in the order single resolutions take them —
// identifiers, object versions, customers by id — so a batch and a
// resolution never wait for each other crosswise. The customers' state is
// read by a statement after the one that locks them: it sees whatever a
// transaction that held a lock committed.
func readBatchState(ctx context.Context, c *pgx.Conn, ins []Input, n int) (*batchState, error) {
	var keys []int64
	var kinds, values, objects, candidates, events []string
	var eventIDs [][]Identifier
	seen := map[Identifier]bool{}
	for i, in := range ins {
		ids := dedupe(in.IDs)
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				keys = append(keys, lockKey(id))
				if i < n {
					kinds, values = append(kinds, id.Kind), append(values, id.Value)
				}
			}
		}
		if i >= n {
			continue
		}
		eventIDs = append(eventIDs, ids)
		if in.Version.ObjectID != "" {
			objects = append(objects, in.Version.ObjectID)
		}
		// The customer the event would create if none of its identifiers
		// were linked: it may exist already, unlinked (merged away).
		if founder, ok := chosenFounder(ids, in.GuestCharge); ok {
			candidates = append(candidates, CanonicalID(founder))
		}
		events = append(events, in.EventID)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	slices.Sort(objects)
	objects = slices.Compact(objects)

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockIdentifiersSQL, keys)
	b.Queue(`SELECT coalesce(`+linkProbe+`, '')
			FROM generate_subscripts($1::text[], 1) i ORDER BY i`, kinds, values)
	b.Queue(`SELECT object_id, created, event_id, status FROM object_versions
		WHERE object_id = ANY($1) ORDER BY object_id FOR UPDATE`, objects)
	// A candidate merged away is read, not locked: a merge is never
	// undone, and the plan leaves its event to be resolved one by one.
	b.Queue(`SELECT c.canonical_id FROM customers c
		WHERE c.canonical_id = ANY(ARRAY(SELECT `+linkProbe+` FROM generate_subscripts($1::text[], 1) i))
			OR (c.canonical_id = ANY($3::text[]) AND c.merged_into IS NULL)
		ORDER BY c.canonical_id FOR UPDATE OF c`, kinds, values, candidates)
	b.Queue(`SELECT c.canonical_id, c.merged_into, c.email, c.name,
			coalesce((SELECT array_agg(l.value ORDER BY l.value COLLATE "C") FROM customer_links l
				WHERE l.canonical_id = c.canonical_id AND l.kind = 'stripe_customer'), '{}')
		FROM customers c
		WHERE c.canonical_id = ANY(ARRAY(SELECT `+linkProbe+` FROM generate_subscripts($1::text[], 1) i) || $3::text[])`,
		kinds, values, candidates)
	// A probe of customer_merges' event index per event, not = ANY: its
	// plan hashed a scan of every merge.
	b.Queue(`SELECT e.id, (SELECT array_agg(m.loser ORDER BY m.loser COLLATE "C") FROM customer_merges m WHERE m.event_id = e.id)
		FROM unnest($1::text[]) AS e(id)`, events)
	br := c.SendBatch(ctx, b)
	defer func() { _ = br.Close() }()

	st := &batchState{links: map[Identifier]string{}, versions: map[string]*Version{}, read: map[string]*Version{},
		custs: map[string]*planCustomer{}, merges: map[string][]string{}, ids: eventIDs}
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	rows, _ := br.Query()
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up identifiers: %w", err)
	}
	if len(found) != len(kinds) {
		return nil, fmt.Errorf("look up identifiers: %d answers for %d identifiers", len(found), len(kinds))
	}
	for i, cid := range found {
		st.links[Identifier{kinds[i], values[i]}] = cid
	}
	var objectID string
	var v Version
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&objectID, &v.Created, &v.EventID, &v.Status}, func() error {
		applied, read := v, v
		st.versions[objectID], st.read[objectID] = &applied, &read
		return nil
	}); err != nil {
		return nil, fmt.Errorf("object versions: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock customers: %w", err)
	}
	var cid string
	var pc planCustomer
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&cid, &pc.mergedInto, &pc.email, &pc.name, &pc.stripeIDs}, func() error {
		cust := pc
		st.custs[cid] = &cust
		pc = planCustomer{}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read customers: %w", err)
	}
	var eventID string
	var losers []string
	rows, _ = br.Query()
	if _, err := pgx.ForEachRow(rows, []any{&eventID, &losers}, func() error {
		if losers != nil {
			st.merges[eventID] = losers
		}
		losers = nil
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read merges: %w", err)
	}
	return st, br.Close()
}

// chosenFounder is the identifier a customer is derived from when none of
// ids is linked: the event's Stripe customer (the last of ids, as choose
// takes it), else its founding identifier.
func chosenFounder(ids []Identifier, guestCharge bool) (Identifier, bool) {
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i].Kind == LinkStripeCustomer {
			return ids[i], true
		}
	}
	return founding(ids, guestCharge)
}

// plan resolves ins in order on st, as resolve would, into res and errs,
// until an event it does not plan (see the comment at the top): it returns
// how many it resolved. An event's own failure (ErrUnknownCustomer,
// ErrVersionTie) changes nothing and is recorded in errs.
func (st *batchState) plan(ins []Input, res []Resolution, errs []error) int {
	for i := range ins {
		r, err, ok := st.resolve(ins[i], st.ids[i])
		if !ok {
			return i
		}
		res[i], errs[i] = r, err
	}
	return len(ins)
}

// resolve plans one resolution (ids: in's, deduped); ok is false if it is
// not plain history.
func (st *batchState) resolve(in Input, ids []Identifier) (res Resolution, err error, ok bool) {
	var known string // the one customer the identifiers lead to
	var stripeID *Identifier
	for i, id := range ids {
		if id.Kind == LinkStripeCustomer {
			stripeID = &ids[i]
		}
		cid := st.links[id]
		if cid == "" {
			continue
		}
		if c := st.custs[cid]; c == nil || c.mergedInto != nil || (known != "" && known != cid) {
			return res, nil, false
		}
		known = cid
	}
	switch {
	case stripeID != nil && st.links[*stripeID] != "":
		res.CanonicalID = st.links[*stripeID]
	case stripeID != nil:
		res.CanonicalID = CanonicalID(*stripeID)
	case known != "":
		res.CanonicalID = known
	default:
		founder, found := founding(ids, in.GuestCharge)
		if !found {
			return Resolution{}, ErrUnknownCustomer, true
		}
		res.CanonicalID = CanonicalID(founder)
	}
	if known != "" && known != res.CanonicalID {
		return Resolution{}, nil, false // another customer to join: a merge or a suspected duplicate
	}
	cust := st.custs[res.CanonicalID]
	switch {
	case cust == nil:
		cust = &planCustomer{created: true, stripeIDs: []string{}}
		res.Created = true
	case cust.mergedInto != nil:
		return Resolution{}, nil, false // to follow to the customer it was merged into
	}
	stale, versionSQL, _, err := versionWrite(in.Version, st.versions[in.Version.ObjectID])
	if err != nil {
		return Resolution{}, err, true
	}
	// Nothing is refused from here on: the plan's state changes.
	if res.Created {
		st.custs[res.CanonicalID] = cust
		st.created = append(st.created, res.CanonicalID)
	}
	res.Stale = stale
	if versionSQL != "" {
		if !slices.Contains(st.objects, in.Version.ObjectID) {
			st.objects = append(st.objects, in.Version.ObjectID)
		}
		v := in.Version
		st.versions[v.ObjectID] = &Version{Created: v.Created, EventID: v.EventID, Status: v.Status}
	}
	for _, id := range ids {
		if st.links[id] != "" {
			continue
		}
		st.links[id] = res.CanonicalID
		st.newLinks = append(st.newLinks, planLink{id: id, customer: res.CanonicalID, eventID: in.EventID})
		switch id.Kind {
		case LinkStripeCustomer:
			cust.stripeIDs = append(cust.stripeIDs, id.Value)
			slices.Sort(cust.stripeIDs)
			res.Changed = true
		case LinkEmail:
			res.Changed = true
		}
	}
	replace := in.Authoritative && !stale
	email, name := cust.email, cust.name
	if in.Email != "" && (replace || email == "") {
		email = in.Email
	}
	if in.Name != "" && (replace || name == "") {
		name = in.Name
	}
	if email != cust.email || name != cust.name {
		cust.email, cust.name = email, name
		res.Changed = true
		if !cust.created && !cust.dirty {
			st.profiles = append(st.profiles, res.CanonicalID)
		}
		cust.dirty = true
	}
	res.Email, res.Name = cust.email, cust.name
	res.StripeCustomerIDs = slices.Clone(cust.stripeIDs)
	res.Merged = slices.Clone(st.merges[in.EventID])
	if res.Merged == nil {
		res.Merged = []string{}
	}
	res.StripeCustomerID = eventStripeCustomer(in, res.StripeCustomerIDs)
	return res, nil, true
}

// queueWrites queues the plan's writes, a statement per table: the new
// customers with their profiles, the new links, the objects' versions and
// the changed profiles. It returns the reader of their answers, which
// reports errPlanDiverged if one did not write what the plan expects.
func (st *batchState) queueWrites(b *pgx.Batch) func(pgx.BatchResults) error {
	var steps []func(pgx.BatchResults) error
	expect := func(what string, want int) {
		steps = append(steps, func(br pgx.BatchResults) error {
			tag, err := br.Exec()
			switch {
			case err != nil && eventError(err):
				return fmt.Errorf("%w: %s: %w", errPlanDiverged, what, err)
			case err != nil:
				return fmt.Errorf("%s: %w", what, err)
			case tag.RowsAffected() != int64(want):
				return fmt.Errorf("%w: %s wrote %d rows, want %d", errPlanDiverged, what, tag.RowsAffected(), want)
			}
			return nil
		})
	}
	if n := len(st.created); n > 0 {
		emails, names := make([]string, n), make([]string, n)
		for i, cid := range st.created {
			emails[i], names[i] = st.custs[cid].email, st.custs[cid].name
		}
		b.Queue(`INSERT INTO customers (canonical_id, email, name)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`, st.created, emails, names)
		expect("create customers", n)
	}
	if n := len(st.newLinks); n > 0 {
		kinds, values, custs, events := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for i, l := range st.newLinks {
			kinds[i], values[i], custs[i], events[i] = l.id.Kind, l.id.Value, l.customer, l.eventID
		}
		b.Queue(`INSERT INTO customer_links (kind, value, canonical_id, source_event_id)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ON CONFLICT (kind, value) DO NOTHING`,
			kinds, values, custs, events)
		expect("link identifiers", n)
	}
	// An object's version row is inserted if none was read and updated
	// only from the version read, so that a row changed since shows in
	// the count.
	var fresh, known []string
	for _, o := range st.objects {
		if st.read[o] == nil {
			fresh = append(fresh, o)
		} else {
			known = append(known, o)
		}
	}
	versionArgs := func(objects []string) (created []int64, events, statuses, read []string) {
		for _, o := range objects {
			v := st.versions[o]
			created, events, statuses = append(created, v.Created), append(events, v.EventID), append(statuses, v.Status)
			if r := st.read[o]; r != nil {
				read = append(read, r.EventID)
			}
		}
		return created, events, statuses, read
	}
	if len(fresh) > 0 {
		created, events, statuses, _ := versionArgs(fresh)
		b.Queue(`INSERT INTO object_versions (object_id, created, event_id, status)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) ON CONFLICT (object_id) DO NOTHING`,
			fresh, created, events, statuses)
		expect("record object versions", len(fresh))
	}
	if len(known) > 0 {
		created, events, statuses, read := versionArgs(known)
		b.Queue(`UPDATE object_versions o SET created = v.created, event_id = v.event_id, status = v.status
			FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS v(object_id, created, event_id, status, read)
			WHERE o.object_id = v.object_id AND o.event_id = v.read`,
			known, created, events, statuses, read)
		expect("update object versions", len(known))
	}
	if n := len(st.profiles); n > 0 {
		emails, names := make([]string, n), make([]string, n)
		for i, cid := range st.profiles {
			emails[i], names[i] = st.custs[cid].email, st.custs[cid].name
		}
		b.Queue(`UPDATE customers c SET email = p.email, name = p.name, updated_at = now()
			FROM unnest($1::text[], $2::text[], $3::text[]) AS p(canonical_id, email, name)
			WHERE c.canonical_id = p.canonical_id`, st.profiles, emails, names)
		expect("update profiles", n)
	}
	return func(br pgx.BatchResults) error {
		for _, step := range steps {
			if err := step(br); err != nil {
				return err
			}
		}
		return nil
	}
}
