// Package support is Switchyard's support automation service: it consumes
// the billing.> domain events, matches them against a validated rules file
// (defaults shipped: failed payment, final failed payment, cancellation,
// chargeback, refund) and opens exactly one Zendesk ticket per (source
// event, rule) — across retries, redeliveries and crashes — publishing the
// outcome on support.> (ticket opened, or failed with the reason).
//
// Exactly once: the ticket's external_id is derived from the rule and the
// billing event; the done-effects ledger records the ticket id, and its
// claim (Once) lets one run of a (message, rule) at a time reach Zendesk.
// A run creates the ticket at once — one request, the requester inline —
// unless an earlier run may have reached Zendesk; then it looks the
// external_id up first, so a ticket whose create's answer was lost is
// found, not duplicated (two requests when none is found). "May have" is
// decided in one place, Opener.priorOf: a redelivery (delivery count > 1),
// a replay of a dead letter, or the ledger's attempted mark, which every
// run writes before its create leaves and a first delivery reads. The
// adapter never retries a create within a call, so an ambiguous failure
// always ends the run and the next run is a redelivery. Each path:
//
//   - First delivery, nothing before it: no mark, so one create. No run
//     of this consumer can have sent it (the mark would say so).
//   - AckWait expires while the first delivery is still in flight: the
//     redelivery (count 2) waits for the claim; if the first recorded the
//     ticket it finds the row and sends nothing, if the first failed it
//     looks up and finds a ticket stored despite the failure.
//   - The first delivery reaches the claim only after its redelivery, or
//     a replay, held it and failed ambiguously: that run wrote the mark
//     before its create, so the first delivery looks up.
//   - Two replicas: the claim is a PostgreSQL advisory lock, so the cases
//     above hold across processes unchanged.
//   - Crash after the create, before the ledger row: the dead process's
//     connection drops and with it the claim; JetStream redelivers after
//     AckWait with count ≥ 2, which looks up and finds the ticket.
//   - 5xx, timeout or dropped connection after the request was sent: a
//     Transient error, nothing recorded, the claim released; the retry is
//     a redelivery (count ≥ 2) and finds the ticket if Zendesk stored it.
//   - 429 before the request was processed: nothing was stored; the retry
//     looks up (one request spent to be sure), finds none and creates.
//   - A replay by an operator (signed, or with no replay keys set): it is
//     handled under the original's id and always looks up first, so a
//     ticket any earlier run left, recorded or not, is found.
//   - The same message published again after JetStream's duplicate window
//     (a delivery count of 1 again): the ledger row from the earlier copy
//     answers it, or, when that copy stopped between create and row, its
//     mark does.
//
// What the rule assumes: the delivery count is the durable's, so deleting
// and recreating the durable while a message is unacknowledged counts its
// deliveries from 1 again (the mark still covers it); a mark whose create
// never left costs one lookup. The ledger's claim must be on a pool of its
// own (run.go's claim pool): priorOf uses the ledger's pool while holding it.
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
