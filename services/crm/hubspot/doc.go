// Package hubspot is the CRM service's adapter for HubSpot's CRM v3
// contacts API: EnsureProperties creates the custom contact properties the
// service writes, UpsertContacts writes contacts by email with the native
// batch upsert (never search-then-create).
//
// Errors are classified with platform/errclass at this boundary: 401/403
// Auth, other 4xx Permanent, 429/5xx/network Transient with a retry hint
// (Retry-After, else HubSpot's policyName; a DAILY 429 hints until the next
// midnight UTC and should raise an alert). Per-input failures of a batch
// (HubSpot's 207) are Permanent and carried per input. Errors never hold
// the token or a full email.
//
// A client-side limiter follows the X-HubSpot-RateLimit-* headers and
// pauses before the burst window runs out (see Config.RateLimitReserve).
// Pointing Config.BaseURL at platform/devkit/emulator/hubspot is the only
// difference between tests and production.
package hubspot
