// Package deploy holds deployment checks: tests that read the repository's
// deployment files (compose.yaml, the service Dockerfiles) and hold them to the
// services' own configuration contracts, since no container engine runs in CI.
// It also keeps the monitoring files, prometheus/ (scrape configuration, alerting
// and recording rules) and grafana/ (the dashboard), which monitoring_test.go
// holds to compose.yaml and to the metrics the services register.
//
// The package has no exported API; it exists so that `go test ./deploy/` in the
// switchyard module is the one place a deployment file and the code it starts are
// checked against each other.
package deploy
