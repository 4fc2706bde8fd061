// Package ops is the projector's operator surface on the ops address: the
// status API (documented in openapi.json) with bearer tokens scoped read
// or operate, the console (server-rendered pages behind a session), the
// overview behind both and `switchyard status`, the daily digest, and the
// audit log of manual actions (replay, discard, rebuild, link). Every
// route of the address is in one table (routes.go). It reads the view
// (internal/view) and answers with the documents of the client package.
package ops
