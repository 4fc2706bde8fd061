// Package view builds the canonical customer view from the hub's streams.
//
// Every message of billing.>, crm.> and support.> becomes a row of events
// in PostgreSQL (schema "projection"): the customer's timeline, with its
// time, source event ids and trace id. Each customer touched by a batch
// gets its customers row recomputed from all of its events by Fold, a pure
// function of the set of events. A set does not care about order or
// duplicates, so the view converges to the same rows however the streams
// are delivered, and Rebuild — which streams the history into a fresh
// schema, folds it a customer at a time and swaps the schema in — produces
// exactly the rows the live projection (Handler) does. The documents it stores are the status API's
// (services/projector/client).
package view
