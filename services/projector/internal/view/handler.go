package view

import (
	"context"

	"github.com/switchyard/switchyard/platform/consumer"
	"github.com/switchyard/switchyard/platform/errclass"
)

// Handler projects a batch of messages in one transaction: the live
// projection. A message that can never be projected fails the batch with a
// permanent error, so the consumer isolates it and dead-letters it alone.
// Each message that decodes names its customer (consumer.Message.Customer),
// so its dead letter, if it gets one, carries the customer too.
func Handler(store *Store) consumer.BatchHandler {
	return func(ctx context.Context, ms []*consumer.Message) error {
		entries := make([]Entry, 0, len(ms))
		for _, m := range ms {
			e, err := NewEntry(m.Subject, m.Data, m.Header)
			if err != nil {
				return errclass.Permanent(err)
			}
			m.Customer = e.CustomerID
			entries = append(entries, e)
		}
		// Database errors are classified by SQLSTATE (platform/errclass):
		// a lost connection is transient, a constraint violation permanent.
		return store.Apply(ctx, entries)
	}
}
