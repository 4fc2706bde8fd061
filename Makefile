# Switchyard — the two commands first: `make run` and `make test`.
SHELL := /bin/bash
BIN   := $(CURDIR)/bin

.PHONY: run test e2e lint build bench soak proto docs clean contract

## run: the whole hub locally (embedded NATS, private or DATABASE_URL PostgreSQL)
run: build
	$(BIN)/switchyard dev

## test: every module's tests against real NATS and real PostgreSQL
test:
	scripts/test.sh

## e2e: end-to-end tracing: the dev hub exports to a real Jaeger (scripts/jaeger, built
## by `go tool` outside go.work) and one failed payment is one trace across every service
e2e:
	scripts/e2e.sh

## chaos: the dependency-fault tests with 2-minute outages instead of CI's 10s (PostgreSQL
## restart mid-burst) and 20s (HubSpot answering 503); see docs/reliability.md
.PHONY: chaos
chaos:
	SWITCHYARD_CHAOS_OUTAGE=2m go test -run 'TestHubSpotOutage|TestPostgresRestartMidBurst' -count=1 -timeout 20m ./services/switchyard/

## lint: gofmt, go vet and staticcheck over every module
lint:
	scripts/lint.sh

## helm: the Helm chart (services/switchyard/deploy/helm/switchyard) linted, rendered and each
## manifest decoded into its Kubernetes type, by Helm's own code, and the Prometheus rules and
## Grafana queries parsed by Prometheus's (promtool check rules), in scripts/helm, a module
## outside go.work (Helm's, Kubernetes's and Prometheus's modules stay out of the services'); the official
## NATS subchart is not fetched (no network to its repository): see docs/operations.md.
## First build: Go proxy downloads (~1 min) and compiling Helm and client-go, measured at 35 min
## with the machine's 2 cores shared by six builds; then the Go build cache makes it ~10 s
.PHONY: helm
helm:
	GOWORK=off go -C scripts/helm vet ./...
	GOWORK=off go -C scripts/helm test -count=1 ./...

# In workspace mode go build stamps no VCS information unless asked: ask
# when git can answer, so `switchyard version` names the commit.
BUILDVCS := $(shell git rev-parse --is-inside-work-tree >/dev/null 2>&1 && echo -buildvcs=true)

## build: binaries into bin/
build:
	@mkdir -p $(BIN)
	go build $(BUILDVCS) -o $(BIN)/switchyard ./services/switchyard
	go build -o $(BIN)/gateway ./services/gateway/cmd/gateway
	go build -o $(BIN)/identity ./services/identity/cmd/identity
	go build -o $(BIN)/crm ./services/crm/cmd/crm
	go build -o $(BIN)/support ./services/support/cmd/support
	go build -o $(BIN)/alerts ./services/alerts/cmd/alerts
	go build -o $(BIN)/projector ./services/projector/cmd/projector

## bench: gateway load test against the textbook handler and the raw JetStream ceiling,
## then identity's handler throughput (PostgreSQL + JetStream, 8 in flight), then the
## projector: raw PostgreSQL upsert and COPY rates, the live batch path and a rebuild,
## then the baseline @supabase/stripe-sync-engine (one upsert per webhook, Node) fed the
## same customers' webhooks over HTTP, then the whole pipeline (sustained events/s,
## webhook→projection latency at 1,000/s),
## then what an fsync before every PubAck costs (sync_interval: always against the default),
## then Zendesk tickets/min and requests/ticket under the smallest plan's limit (virtual clock),
## then HubSpot contact updates/min and requests/update under the smallest plan's limit
## (virtual clock; updates of one contact held for the next call against coalesced)
bench:
	scripts/bench.sh
	go test -run '^$$' -bench BenchmarkHandle -benchtime 5000x ./services/identity
	go test -run '^$$' -bench 'Raw|Live|Rebuild' -benchtime 3x -timeout 30m ./services/projector/internal/view
	scripts/bench/stripesync/run.sh
	go test -run '^$$' -bench BenchmarkPipeline -benchtime 1x -timeout 30m ./services/switchyard
	go test -run '^$$' -bench BenchmarkPublishSync -benchtime 3x ./platform/devkit/integration/natsbus
	go test -run '^$$' -bench BenchmarkTicketsUnderPlanLimit -benchtime 400x ./services/support
	go test -run '^$$' -bench BenchmarkContactUpdatesUnderPlanLimit -benchtime 15000x ./services/crm

## soak: not CI — `switchyard dev` (a child process, fresh data folder) for 30 minutes at
## 300 signed Stripe webhooks/s, 1 % delivered twice, 10 % of vendor requests failing
## retryably; a line a minute (RSS, lag p99, dead letters), then the exactly-once counts
## (SOAK_FLAGS="-duration 3m" for a short one)
soak:
	go run ./scripts/bench/cmd/soak -duration 30m $(SOAK_FLAGS)

## docs: regenerate docs/configuration.md from the config code (make lint fails when it is stale)
docs:
	go run ./scripts/configdoc -w docs/configuration.md

## proto: regenerate code from proto/ (must leave no diff)
proto:
	scripts/proto.sh

## contract: validate proto/asyncapi.yaml with @asyncapi/parser (Node.js 20+; the pinned
## packages are installed into scripts/asyncapi/node_modules when its lock file changed)
contract:
	@cmp -s scripts/asyncapi/package-lock.json scripts/asyncapi/node_modules/.switchyard-installed-lock || { \
	  npm ci --prefix scripts/asyncapi --no-audit --no-fund --ignore-scripts && \
	  cp scripts/asyncapi/package-lock.json scripts/asyncapi/node_modules/.switchyard-installed-lock; }
	node scripts/asyncapi/validate.mjs

clean:
	rm -rf $(BIN)
