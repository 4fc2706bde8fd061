// Package integration holds the tests of the runtime packages in
// github.com/switchyard/switchyard/platform that need a real JetStream server,
// a real PostgreSQL or the Stripe fixtures: one folder per runtime package
// (integration/consumer tests platform/consumer, and so on), each an external
// test package that uses only the runtime package's exported API.
//
// They live here, in the development module, so that the runtime module's
// go.mod — which every service requires — does not require nats-server or
// any emulator. Unit tests that need none of that stay beside their package.
package integration
