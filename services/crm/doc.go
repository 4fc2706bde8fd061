// Package crm is Switchyard's CRM sync service: it consumes the billing.>
// domain events and keeps each customer's HubSpot contact in step — upsert
// by email with the canonical id, Stripe id, plan, subscription status,
// MRR, lifecycle stage and last payment status — and publishes the outcome
// of every sync on crm.> (synced, pending retry with the next attempt,
// failed with the reason).
//
// Every upsert is idempotent by construction (HubSpot's native upsert by
// email) and recorded in the done-effects ledger under the billing event's
// id, so redeliveries, replays and crashes neither skip nor repeat a sync.
// A superseded (late) event never moves plan, status or MRR backwards.
// Concurrent updates go to HubSpot in batch upserts, and updates of one
// contact that come together share its input (see batcher).
//
// Text from outside is data: every property value goes through
// hubspot.PropertyValue (clean, one line, within HubSpot's limit). An
// email that cannot be a contact's key (spaces, no @, too long, or refused
// by HubSpot as INVALID_EMAIL) is never sent: the sync is recorded as a
// permanent crm.contact.failed saying what is wrong with it, not as a dead
// letter, since no retry or replay can succeed and a corrected email in
// Stripe brings a new event that syncs.
package crm
