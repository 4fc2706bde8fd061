package ops

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
	"github.com/switchyard/switchyard/services/projector/client"
	"github.com/switchyard/switchyard/services/projector/internal/view"
)

// Digest is the status API's document (client.Digest).
type Digest = client.Digest

// GatherDigest counts the last 24 hours.
func GatherDigest(ctx context.Context, js jetstream.JetStream, store *view.Store, dlq *deadletter.Store) Digest {
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
	if n, err := store.DayCounts(ctx, d.From); err != nil {
		problem("projection: %v", err)
	} else {
		d.BillingEvents, d.AutomationsDone, d.AutomationsFailed = n.Billing, n.AutomationsDone, n.AutomationsFailed
	}
	o := Overview{CustomersByState: map[string]int{}}
	if err := store.OutcomeFigures(ctx, &o); err != nil {
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
	defer view.DropConsumer(ctx, s, cons)
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
		if strings.HasPrefix(m.Headers().Get(wire.HeaderRequestID), client.ReconcileRequestPrefix) {
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
