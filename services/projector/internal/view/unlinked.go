package view

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchyard/switchyard/platform/emailaddr"
	"github.com/switchyard/switchyard/services/projector/client"
)

// Unlinked payers. A charge or dispute that names no Stripe customer (a
// guest payment) has a customer record of its own, linked to no one:
// whatever email its payer typed is no one's identity. The console and the
// status API list these records with candidate customers (a verified email
// equal to one the payer typed), and one audited operator action links a
// record to a customer: identity merges it (opscmd.Link), and the merge
// comes back through billing.customer.upserted like any other.

// UnlinkedPayer is the status API's document (client.UnlinkedPayer).
type UnlinkedPayer = client.UnlinkedPayer

// Candidate is the status API's document (client.Candidate).
type Candidate = client.Candidate

// Unlinked lists up to limit records with no Stripe customer, most recent
// first, each with its candidates.
func (s *Store) Unlinked(ctx context.Context, limit int) ([]UnlinkedPayer, error) {
	rows, err := s.pool.Query(ctx, `SELECT view FROM `+s.t.customers+` WHERE stripe_ids = '{}'
		ORDER BY last_event_at DESC, customer_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("unlinked payers: %w", err)
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("unlinked payers: %w", err)
	}
	out := make([]UnlinkedPayer, 0, len(docs))
	var emails []string
	for _, doc := range docs {
		var v View
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, fmt.Errorf("unlinked payer view: %w", err)
		}
		Evaluate(&v, time.Now())
		p := UnlinkedPayer{CustomerID: v.CustomerID, State: v.State, LastEventAt: v.LastEventAt, UnverifiedEmails: v.UnverifiedEmails,
			LastPayment: v.LastPayment, OpenDisputes: v.OpenDisputes, Candidates: []Candidate{}}
		for _, e := range v.UnverifiedEmails {
			emails = append(emails, emailaddr.Normalize(e))
		}
		out = append(out, p)
	}
	if len(emails) == 0 {
		return out, nil
	}
	rows, err = s.pool.Query(ctx, `SELECT view FROM `+s.t.customers+` WHERE email = ANY($1) AND stripe_ids <> '{}' ORDER BY customer_id LIMIT 1000`, emails)
	if err != nil {
		return nil, fmt.Errorf("candidates: %w", err)
	}
	docs, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("candidates: %w", err)
	}
	byEmail := map[string][]Candidate{}
	for _, doc := range docs {
		var v View
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, fmt.Errorf("candidate view: %w", err)
		}
		byEmail[v.Email] = append(byEmail[v.Email], Candidate{CustomerID: v.CustomerID, Email: v.Email, Name: v.Name, StripeCustomerIDs: v.StripeCustomerIDs})
	}
	for i := range out {
		for _, e := range out[i].UnverifiedEmails {
			for _, c := range byEmail[emailaddr.Normalize(e)] {
				if !slices.ContainsFunc(out[i].Candidates, func(d Candidate) bool { return d.CustomerID == c.CustomerID }) {
					out[i].Candidates = append(out[i].Candidates, c)
				}
			}
		}
	}
	return out, nil
}
