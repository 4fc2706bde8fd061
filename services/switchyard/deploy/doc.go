// Package deploy holds deployment checks: tests that read the repository's
// deployment files (compose.yaml, the service Dockerfiles) and hold them to the
// services' own configuration contracts, since no container engine runs in CI.
// It also keeps the monitoring files, prometheus/ (scrape configuration, alerting
// and recording rules) and grafana/ (the dashboard and the provisioning that
// loads it), which monitoring_test.go and compose_test.go hold to compose.yaml
// and to the metrics the services register; jaeger/ (compose's Jaeger v2); and
// helm/switchyard, the Helm chart, whose NATS values (helm_test.go) and rendered
// environment (helm/rendered-env.json, written by scripts/helm, which renders
// the chart with Helm's own code) are held to nats-server's parser and to each
// service's configuration loader.
//
// The package has no exported API; it exists so that `go test ./deploy/` in the
// switchyard module is the one place a deployment file and the code it starts are
// checked against each other.
package deploy
