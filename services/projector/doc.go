// Package projector is the projector's entry point: Run reads the
// configuration and wires the pieces, each in a package of its own.
//
//   - internal/view builds the canonical customer view from billing.>,
//     crm.> and support.>: the pure Fold, the live projection (Handler),
//     the store and Rebuild.
//   - internal/ops is the operator surface on the ops address: the status
//     API (openapi.json) with bearer tokens scoped read or operate, the
//     console, the overview and the digest, from one route table.
//   - client is the status API's JSON documents and an HTTP client, with no
//     database driver: what the switchyard CLI uses.
//   - migrations is the SQL (ops tables, the projection's schema), for
//     `switchyard migrate` without the service.
//
// cmd/projector is the binary; `projector rebuild --direct` rebuilds the
// view from the process itself when no projector is running.
package projector
