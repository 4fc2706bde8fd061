// Package projector builds the canonical customer view from the hub's
// streams and serves it.
//
// It consumes billing.>, crm.> and support.> into PostgreSQL (schema
// "projection"): every message becomes a row of events (the customer's
// timeline, with its time, source event ids and trace id), and each customer
// touched by a batch gets its customers row recomputed from all of its
// events by Fold, a pure function of the set of events. A set does not care
// about order or duplicates, so the view converges to the same rows however
// the streams are delivered, and Rebuild — which folds everything in memory
// and swaps in a fresh schema — produces exactly the rows the live
// projection does.
//
// The status API (api.go, documented in openapi.json) answers on the ops
// address with bearer tokens scoped read or operate.
package projector
