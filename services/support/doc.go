// Package support is Switchyard's support automation service: it consumes
// the billing.> domain events, matches them against a validated rules file
// (defaults shipped: failed payment, final failed payment, cancellation,
// chargeback, refund) and opens exactly one Zendesk ticket per (source
// event, rule) — across retries, redeliveries and crashes — publishing the
// outcome on support.> (ticket opened, or failed with the reason).
//
// Exactly once: the ticket's external_id is derived from the rule and the
// billing event; before creating, the adapter looks the external_id up, so
// a ticket created by an attempt whose answer was lost is found, not
// duplicated; and the done-effects ledger records the ticket id.
//
// Rules select on validated fields only (event type, the final-attempt
// flag); free-form Stripe metadata never reaches this service, and no rule
// can trigger a privileged action: tickets are the only effect.
//
// Text from outside is data: every value a template shows goes through
// zendesk.Value (one clean line, Markdown links broken), the comment is
// plain text (comment.body, never html_body), and the adapter cuts
// subject and body to Zendesk's limits with a note. The customer becomes
// the requester only when the billing event's email is a valid address;
// otherwise the ticket opens without one and its body says why — an
// unusable email never dead-letters the event.
package support
