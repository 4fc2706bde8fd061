package projector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/deadletter"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/proto/wire"
)

// ReconcileRequestPrefix starts the request id `switchyard reconcile`
// gives each event it publishes (X-Request-Id, kept by the gateway in the
// message's Switchyard-Request-Id header): how the digest counts drift
// healed.
const ReconcileRequestPrefix = "reconcile_"

// Digest is the day in numbers, for the daily Slack digest.
type Digest struct {
	From              time.Time      `json:"from"`
	To                time.Time      `json:"to"`
	StripeEvents      int            `json:"stripe_events"`      // Stripe events stored
	DriftHealed       int            `json:"drift_healed"`       // of those, published by switchyard reconcile
	BillingEvents     int            `json:"billing_events"`     // domain events projected
	AutomationsDone   int            `json:"automations_done"`   // CRM contacts synced + tickets opened
	AutomationsFailed int            `json:"automations_failed"` // CRM syncs and tickets given up on
	FailuresOpen      int            `json:"failures_open"`      // open dead letters now
	CustomersByState  map[string]int `json:"customers_by_state"` // now
	Problems          []string       `json:"problems"`
}

// GatherDigest counts the last 24 hours.
func GatherDigest(ctx context.Context, js jetstream.JetStream, store *Store, dlq *deadletter.Store) Digest {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	to := time.Now().UTC()
	d := Digest{From: to.Add(-24 * time.Hour), To: to, CustomersByState: map[string]int{}, Problems: []string{}}
	problem := func(format string, args ...any) { d.Problems = append(d.Problems, fmt.Sprintf(format, args...)) }

	if s, err := js.Stream(ctx, natsbus.StreamStripe); err != nil {
		problem("stream %s: %v", natsbus.StreamStripe, err)
	} else if err := countIntake(ctx, s, d.From, &d); err != nil {
		problem("intake: %v", err)
	}
	if err := store.pool.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE subject LIKE 'billing.%'),
			count(*) FILTER (WHERE subject IN ('crm.contact.synced', 'support.ticket.opened')),
			count(*) FILTER (WHERE subject IN ('crm.contact.failed', 'support.ticket.failed'))
		FROM `+store.t.events+` WHERE occurred_at > $1`, d.From).Scan(&d.BillingEvents, &d.AutomationsDone, &d.AutomationsFailed); err != nil {
		problem("projection: %v", err)
	}
	o := Overview{CustomersByState: map[string]int{}}
	if err := store.outcomeFigures(ctx, &o); err != nil {
		problem("projection: %v", err)
	} else {
		d.CustomersByState = o.CustomersByState
	}
	if entries, err := dlq.List(ctx, deadletter.Filter{}, nil); err != nil {
		problem("dead letters: %v", err)
	} else {
		d.FailuresOpen = len(entries)
	}
	return d
}

// countIntake reads the headers of the messages stored since from.
func countIntake(ctx context.Context, s jetstream.Stream, from time.Time, d *Digest) error {
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from, HeadersOnly: true})
	if err != nil {
		return err
	}
	defer dropConsumer(ctx, s, cons)
	info, err := cons.Info(ctx)
	if err != nil || info.NumPending == 0 {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextMaxWait(10 * time.Second))
		if errors.Is(err, nats.ErrTimeout) {
			// Not silently low: the digest lists it as a problem.
			return fmt.Errorf("read %d of the day's messages, then nothing for 10s", d.StripeEvents)
		}
		if err != nil {
			return err
		}
		d.StripeEvents++
		if strings.HasPrefix(m.Headers().Get(wire.HeaderRequestID), ReconcileRequestPrefix) {
			d.DriftHealed++
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		if meta.NumPending == 0 {
			return nil
		}
	}
}
