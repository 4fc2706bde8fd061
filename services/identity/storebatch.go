package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchyard/switchyard/platform/postgres"
)

// ResolveBatch resolves ins, in order, as ResolveInput resolves each, but
// in one transaction. Its usual case — each event one customer's plain
// history — is planned set-wise: two round trips and about ten statements
// for the whole batch (see storeplan.go). From the first event where
// customers meet or one was merged away, the rest are resolved one by one
// in the same transaction, chained: a round trip per event of a known
// customer (see batchTxOnce). errs[i] is input i's own failure
// (ErrVersionTie, ErrUnknownCustomer, or a statement of its own refused):
// its resolution changed nothing, and the others are unaffected. err is
// the batch's (the database unreachable, a deadlock that outlived its
// retries): then nothing was resolved.
//
// Every identifier of the batch is locked first, in one fixed order, so
// two batches naming a customer in turn queue behind one another instead
// of deadlocking; within a batch, one customer's events are resolved one
// after another, as the stream holds them.
func (s *Store) ResolveBatch(ctx context.Context, ins []Input) (res []Resolution, errs []error, err error) {
	res, errs = make([]Resolution, len(ins)), make([]error, len(ins))
	return res, errs, s.resolveRange(ctx, ins, res, errs)
}

// resolveRange resolves ins into res and errs. At the first input resolved
// one by one that fails, the transaction is rolled back: the inputs before
// it are resolved again in a transaction of their own, the failure is
// recorded, and the rest go on in the next.
func (s *Store) resolveRange(ctx context.Context, ins []Input, res []Resolution, errs []error) error {
	for len(ins) > 0 {
		failed, ferr, err := s.batchTx(ctx, ins, res, errs)
		if err != nil || failed < 0 {
			return err
		}
		res[failed], errs[failed] = Resolution{}, ferr
		if err := s.resolveRange(ctx, ins[:failed], res[:failed], errs[:failed]); err != nil {
			return err
		}
		ins, res, errs = ins[failed+1:], res[failed+1:], errs[failed+1:]
	}
	return nil
}

// batchTx resolves ins in one transaction, retrying a deadlock's loser at
// once (as ResolveInput does), and one by one if the plan's writes
// diverged. It returns failed = -1 once all are committed, or the index of
// the first input resolved one by one that failed, with its error,
// everything rolled back.
func (s *Store) batchTx(ctx context.Context, ins []Input, res []Resolution, errs []error) (failed int, ferr, err error) {
	planned := true
	for attempt := 1; ; attempt++ {
		failed, ferr, err = s.batchTxOnce(ctx, ins, res, errs, planned)
		if errors.Is(err, errPlanDiverged) && planned {
			planned = false
			continue
		}
		var pgErr *pgconn.PgError
		if attempt >= 5 || !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			return failed, ferr, err
		}
	}
}

// batchTxOnce runs the batch's transaction once: with planned, the plan
// resolves what it can and the rest are resolved one by one after its
// writes; without, all are resolved one by one.
func (s *Store) batchTxOnce(ctx context.Context, ins []Input, res []Resolution, errs []error, planned bool) (failed int, ferr, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Release()
	c := conn.Conn()
	defer postgres.RollbackOpen(ctx, c)
	clear(errs)
	k := 0 // the first input resolved one by one
	var st *batchState
	if planned {
		n := plannable(ins)
		if st, err = readBatchState(ctx, c, ins, n); err != nil {
			if eventError(err) {
				err = fmt.Errorf("%w: %w", errPlanDiverged, err)
			}
			return 0, nil, fmt.Errorf("read the batch's identities: %w", err)
		}
		k = st.plan(ins[:n], res, errs)
		defer func() {
			if err == nil && failed < 0 {
				s.planned.Add(int64(k))
			}
		}()
	}
	var r *resolver
	if k < len(ins) {
		r = &resolver{tx: c, in: ins[k], ids: dedupe(ins[k].IDs), inBatch: true}
	}
	switch {
	case st != nil:
		if err := writePlan(ctx, c, st, r); err != nil {
			return 0, nil, fmt.Errorf("write the batch's plan: %w", err)
		}
	default:
		if err := lockBatch(ctx, c, ins, r); err != nil {
			return 0, nil, fmt.Errorf("lock the batch's identifiers: %w", err)
		}
	}
	// The resolutions are chained, a round trip each: the first is looked
	// up with the plan's writes or the batch's locks, each next one in its
	// predecessor's finish, and the last finish commits.
	for i := k; i < len(ins); i++ {
		if i+1 < len(ins) {
			r.next = &resolver{tx: c, in: ins[i+1], ids: dedupe(ins[i+1].IDs), inBatch: true}
		} else {
			r.commit = true
		}
		got, err := resolve(ctx, r)
		if err != nil {
			if eventError(err) {
				return i, err, nil
			}
			return 0, nil, err
		}
		res[i], r = got, r.next
	}
	return -1, nil, nil
}

// writePlan sends the plan's writes in one round trip, with first's
// lookUp if an input is left to resolve one by one, else with COMMIT.
func writePlan(ctx context.Context, c *pgx.Conn, st *batchState, first *resolver) error {
	b := &pgx.Batch{}
	read := st.queueWrites(b)
	if first != nil {
		first.queueLookUp(b)
	} else {
		b.Queue("COMMIT")
	}
	br := c.SendBatch(ctx, b)
	defer func() { _ = br.Close() }()
	if err := read(br); err != nil {
		return err
	}
	if first != nil {
		first.lookedUp = true
		if first.lookUpErr = first.readLookUp(br); first.lookUpErr != nil {
			return nil // the first resolution's failure, not the plan's
		}
	} else if err := postgres.ReadCommit(br); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return br.Close()
}

// lockBatch opens the batch's transaction and locks every identifier the
// batch names, in lockKey order, in one round trip with first's lookUp:
// each resolution then finds its identifiers' locks held already. first's
// answers, or its error, wait in first for its resolve.
func lockBatch(ctx context.Context, c *pgx.Conn, ins []Input, first *resolver) error {
	var keys []int64
	for _, in := range ins {
		for _, id := range dedupe(in.IDs) {
			keys = append(keys, lockKey(id))
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockIdentifiersSQL, keys)
	first.queueLookUp(b)
	br := c.SendBatch(ctx, b)
	defer func() { _ = br.Close() }()
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	first.lookedUp = true
	if first.lookUpErr = first.readLookUp(br); first.lookUpErr != nil {
		return nil // the first resolution's failure, not the batch's
	}
	return br.Close()
}

// eventError reports whether err is one input's own failure rather than
// the batch's: what identity decides (a tie, no customer), or a statement
// PostgreSQL refused for its data. A lost connection, a cancelled context,
// a deadlock or a server shutting down are the batch's.
func eventError(err error) bool {
	if errors.Is(err, ErrVersionTie) || errors.Is(err, ErrUnknownCustomer) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "57", "58", "XX": // connection, transaction rollback, resources, operator intervention, system, internal
		return false
	}
	return true
}
