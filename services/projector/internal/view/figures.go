package view

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/proto/subjects"
	"github.com/switchyard/switchyard/services/projector/client"
)

// Counts are the projection's figures of one period, for the digest.
type Counts struct {
	Billing           int // domain billing events projected
	AutomationsDone   int // CRM contacts synced + tickets opened
	AutomationsFailed int // CRM syncs and tickets given up on
}

// DayCounts counts the events projected since from.
func (s *Store) DayCounts(ctx context.Context, from time.Time) (Counts, error) {
	var n Counts
	err := s.pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE subject LIKE 'billing.%'),
			count(*) FILTER (WHERE subject IN ('crm.contact.synced', 'support.ticket.opened')),
			count(*) FILTER (WHERE subject IN ('crm.contact.failed', 'support.ticket.failed'))
		FROM `+s.t.events+` WHERE occurred_at > $1`, from).Scan(&n.Billing, &n.AutomationsDone, &n.AutomationsFailed)
	return n, err
}

// OutcomeFigures reads the automation figures of the last 24 hours from
// the projection into o: outcome counts, a CRM outage under way, ticket
// latency, and customers by state.
func (s *Store) OutcomeFigures(ctx context.Context, o *client.Overview) error {
	if err := s.outcomeCounts(ctx, o); err != nil {
		return err
	}
	if err := s.crmOutage(ctx, o); err != nil {
		return err
	}
	o.CRMSuccessRate = 1
	if total := o.CRMSynced24h + o.CRMFailed24h; total > 0 {
		o.CRMSuccessRate = float64(o.CRMSynced24h) / float64(total)
	}
	if err := s.ticketLatency(ctx, o); err != nil {
		return err
	}
	return s.customersByState(ctx, o)
}

// outcomeCounts counts the CRM and support outcomes of the last 24 hours.
func (s *Store) outcomeCounts(ctx context.Context, o *client.Overview) error {
	rows, err := s.pool.Query(ctx, `SELECT subject, count(*) FROM `+s.t.events+`
		WHERE occurred_at > now() - interval '24 hours' AND subject = ANY($1) GROUP BY subject`,
		[]string{subjects.CRMContactSynced, subjects.CRMContactFailed, subjects.CRMContactPendingRetry, subjects.SupportTicketOpened, subjects.SupportTicketFailed})
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var subj string
		var n int
		if err := rows.Scan(&subj, &n); err != nil {
			return err
		}
		switch subj {
		case subjects.CRMContactSynced:
			o.CRMSynced24h = n
		case subjects.CRMContactFailed:
			o.CRMFailed24h = n
		case subjects.CRMContactPendingRetry:
			o.CRMRetries24h = n
		case subjects.SupportTicketOpened:
			o.Tickets24h = n
		case subjects.SupportTicketFailed:
			o.TicketFailed24h = n
		}
	}
	return rows.Err()
}

// crmOutage adds a problem for a vendor outage under way: CRM retries in
// the last minutes and no contact synced since the newest of them (syncs
// are delayed, not lost; the problem clears once syncs go through again).
func (s *Store) crmOutage(ctx context.Context, o *client.Overview) error {
	var retries5m int
	var lastRetry, lastSync *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE subject = $1), max(occurred_at) FILTER (WHERE subject = $1), max(occurred_at) FILTER (WHERE subject = $2)
		FROM `+s.t.events+` WHERE occurred_at > now() - interval '5 minutes' AND subject IN ($1, $2)`,
		subjects.CRMContactPendingRetry, subjects.CRMContactSynced).Scan(&retries5m, &lastRetry, &lastSync); err != nil {
		return err
	}
	if retries5m > 0 && (lastSync == nil || lastSync.Before(*lastRetry)) {
		since := "in the last 5 minutes"
		if lastSync != nil {
			since = "since " + lastSync.UTC().Format("15:04:05 UTC")
		}
		o.Problems = append(o.Problems, fmt.Sprintf("CRM sync is failing: %d retries in the last 5 minutes and no contact synced %s (HubSpot down or rate limiting?); syncs are delayed, not lost", retries5m, since))
	}
	return nil
}

// ticketLatency measures from the hub's receipt of the Stripe event (not
// from Stripe's created: an event can arrive days later, through Stripe's
// retries or reconcile) to the ticket's outcome. Events received before
// receipt times were recorded are left out.
func (s *Store) ticketLatency(ctx context.Context, o *client.Overview) error {
	var p50, p95 *float64
	if err := s.pool.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.95) WITHIN GROUP (ORDER BY d), count(*)
		FROM (SELECT greatest(extract(epoch FROM t.occurred_at - b.received_at), 0) AS d
			FROM `+s.t.events+` t JOIN `+s.t.sources+` src ON src.event_id = t.event_id JOIN `+s.t.events+` b ON b.event_id = src.source_id
			WHERE t.subject = $1 AND t.occurred_at > now() - interval '24 hours' AND b.received_at IS NOT NULL) l`, subjects.SupportTicketOpened).Scan(&p50, &p95, &o.TicketsTimed); err != nil {
		return err
	}
	if p50 != nil {
		o.TicketLatencyP50 = *p50
	}
	if p95 != nil {
		o.TicketLatencyP95 = *p95
	}
	return nil
}

// customersByState counts customers by their state's kind, evaluated now:
// the stored kind is as of the events, so a scheduled retry whose date has
// passed counts as overdue (the rule Evaluate applies to one customer).
func (s *Store) customersByState(ctx context.Context, o *client.Overview) error {
	states, err := s.pool.Query(ctx, `SELECT CASE WHEN state = $1 AND (view->'last_payment'->>'next_attempt_at')::timestamptz <= now()
		THEN $2 ELSE state END, count(*) FROM `+s.t.customers+` GROUP BY 1`, KindRetryScheduled, KindRetryOverdue)
	if err != nil {
		return err
	}
	defer states.Close()
	if o.CustomersByState == nil {
		o.CustomersByState = map[string]int{}
	}
	for states.Next() {
		var state string
		var n int
		if err := states.Scan(&state, &n); err != nil {
			return err
		}
		o.CustomersByState[state] = n
	}
	return states.Err()
}
