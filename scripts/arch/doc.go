// Package arch enforces the import direction of the repository in its test:
// services → platform → proto; no service imports another; the operator CLI
// imports only the client packages of services (the dev composition root,
// compiled out of production builds by the nodev tag, may start each service
// through its entry package); the runtime module requires no nats-server and
// no production binary links an emulator or the test kit.
//
// It reads the workspace with `go list -json` (the go/packages view of it) and
// each file's imports with go/parser, so it needs only the go command.
package arch
