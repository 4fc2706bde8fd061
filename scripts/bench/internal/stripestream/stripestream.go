// Package stripestream declares the JetStream stream that the benchmark
// baselines publish Stripe events to, so the textbook handler and the raw
// JetStream ceiling measure writes into an identically configured stream.
package stripestream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// Name is the stream name.
	Name = "STRIPE"
	// SubjectPrefix prefixes the Stripe event type to form a subject.
	SubjectPrefix = "stripe.events."
)

// Config returns the stream configuration: file storage, every
// stripe.events.> subject, and a one-hour duplicate window so Nats-Msg-Id
// (the Stripe event id) deduplicates redeliveries.
func Config() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       Name,
		Subjects:   []string{SubjectPrefix + ">"},
		Storage:    jetstream.FileStorage,
		Duplicates: time.Hour,
	}
}

// Ensure creates the stream or updates it to Config.
func Ensure(ctx context.Context, js jetstream.JetStream) error {
	if _, err := js.CreateOrUpdateStream(ctx, Config()); err != nil {
		return fmt.Errorf("create or update stream %s: %w", Name, err)
	}
	return nil
}
