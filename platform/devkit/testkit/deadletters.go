package testkit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
	"github.com/switchyard/switchyard/platform/ledger"
	"github.com/switchyard/switchyard/platform/natsbus"
	"github.com/switchyard/switchyard/platform/postgres"
)

// DeadLetterScene is the set-up the dead-letter tools are tested on: two
// durable consumers of billing.> on one stream, "crm", whose every message
// fails with an auth error (a revoked HubSpot token) until Fix, and
// "projector", which handles everything; each id given is published once as
// billing.payment.failed. So crm dead-letters them all, and a replay must
// reach crm under the original id and never projector again.
type DeadLetterScene struct {
	// DatabaseURL is the migrated database the consumers' ledgers use.
	DatabaseURL string

	mu      sync.Mutex
	fixed   bool
	handled []string
	other   atomic.Int64
}

// StartDeadLetterScene starts the scene on js, stopped with the test.
func StartDeadLetterScene(t *testing.T, js jetstream.JetStream, ids ...string) *DeadLetterScene {
	t.Helper()
	ctx := context.Background()
	s := &DeadLetterScene{DatabaseURL: Postgres(t)}
	pool, err := postgres.Open(ctx, s.DatabaseURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := ledger.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	crm, err := consumer.New(js, ledger.New(pool), consumer.Config{Name: "crm", Stream: natsbus.StreamBilling, Subjects: []string{"billing.>"}, Create: true},
		func(_ context.Context, m *consumer.Message) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.fixed {
				return errclass.Auth(errors.New("hubspot 401: token expired"))
			}
			s.handled = append(s.handled, m.ID)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	other, err := consumer.New(js, ledger.New(pool), consumer.Config{Name: "projector", Stream: natsbus.StreamBilling, Subjects: []string{"billing.>"}, Create: true},
		func(context.Context, *consumer.Message) error { s.other.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- crm.Run(cctx) }()
	go func() { done <- other.Run(cctx) }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	for _, id := range ids {
		msg := &nats.Msg{Subject: "billing.payment.failed", Data: []byte(`{"id":"` + id + `"}`), Header: nats.Header{"Nats-Msg-Id": {id}}}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Fix is the operator fixing crm's token: its handler succeeds from now on.
func (s *DeadLetterScene) Fix() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fixed = true
}

// Handled is the message ids crm handled after Fix, in order.
func (s *DeadLetterScene) Handled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.handled)
}

// OtherHandled is how many messages projector handled.
func (s *DeadLetterScene) OtherHandled() int64 { return s.other.Load() }
