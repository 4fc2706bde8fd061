// Package zendesk is the support service's adapter for the Zendesk Support
// tickets API: look tickets up by external_id, create them, and
// EnsureTicket, which keeps one ticket per external_id across retries and
// crashes: it looks up before creating when the caller says an earlier
// attempt may have reached Zendesk (MaybeSent), and otherwise creates at
// once, in one request (NeverSent).
//
// Errors are classified with platform/errclass at this boundary (Auth for
// 401/403, Permanent for 422 and other 4xx, Transient with a retry hint for
// 429, 5xx and network failures). They never carry the API token, and
// emails only masked.
package zendesk
