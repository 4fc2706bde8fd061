#!/usr/bin/env bash
# run.sh — same-machine baseline: how many Stripe webhooks per second
# @supabase/stripe-sync-engine writes into PostgreSQL, fed signed webhooks over
# HTTP (three per customer: customer.created with an email,
# invoice.payment_failed, invoice.paid) like the pipeline benchmark feeds the hub.
#
# It creates a fresh database, starts server.mjs (one Node process, which runs
# the library's migrations), posts a warm-up, then the measured events with the
# Go generator (gen/), prints one summary line and the row counts it checks
# (every event written), then stops the server and drops the database.
# Generator, Node and PostgreSQL share the machine's cores.
#
# Environment (all optional):
#   STRIPESYNC_CUSTOMERS         measured customers, 3 events each (default 2000)
#   STRIPESYNC_CLIENTS           concurrent HTTP clients (default 32)
#   STRIPESYNC_WARMUP_CUSTOMERS  warm-up customers, not counted (default 100 = 300 events; 0 skips)
#   STRIPESYNC_POOL_MAX          the library's PostgreSQL pool size (default: its own, 10)
#   STRIPESYNC_PORT              loopback port of the server (default 18090)
#   DATABASE_URL                 base URL; the run's database replaces its path
#                                (default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
CUSTOMERS="${STRIPESYNC_CUSTOMERS:-2000}"
CLIENTS="${STRIPESYNC_CLIENTS:-32}"
WARMUP="${STRIPESYNC_WARMUP_CUSTOMERS:-100}"
PORT="${STRIPESYNC_PORT:-18090}"
BASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
FIXTURES="$ROOT/platform/devkit/testkit/fixtures/stripe/events"
SECRET="whsec_bench$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
DB="stripesync_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
# Same server and options as BASE_URL, database $DB (query string kept).
[[ "$BASE_URL" =~ ^postgres(ql)?://[^/]+/ ]] || {
	echo "stripesync: DATABASE_URL must be a postgres:// URL with a database path, e.g. postgres://postgres@127.0.0.1:5432/postgres" >&2
	exit 2
}
url_path="${BASE_URL%%\?*}"
query="${BASE_URL#"$url_path"}"
DB_URL="${url_path%/*}/$DB$query"

WORK="$(mktemp -d -t stripesync-bench.XXXXXX)"
SERVER_PID=""
DB_CREATED=0
cleanup() {
	if [[ -n "$SERVER_PID" ]]; then
		kill "$SERVER_PID" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$SERVER_PID" 2>/dev/null || true # its shutdown stalled
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	if ((DB_CREATED)); then
		psql -q "$BASE_URL" -c "drop database if exists $DB with (force)" >/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# A missing prerequisite skips the baseline, saying why, so that the rest of
# `make bench` still runs.
skip() {
	echo "stripe-sync-engine baseline skipped: $*" >&2
	exit 0
}
for tool in node npm psql curl go; do
	command -v "$tool" >/dev/null || skip "$tool not found"
done
psql -qAt "$BASE_URL" -c 'select 1' >/dev/null 2>&1 || skip "no PostgreSQL at $BASE_URL (set DATABASE_URL)"
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && {
	echo "stripesync: something already answers on 127.0.0.1:$PORT; set STRIPESYNC_PORT" >&2
	exit 1
}
[[ -d "$HERE/node_modules" ]] || (cd "$HERE" && npm ci --no-audit --no-fund >&2) || skip "npm ci failed (no registry?)"
VERSION="$(node -p "require('$HERE/node_modules/@supabase/stripe-sync-engine/package.json').version")"
(cd "$HERE/gen" && GOWORK=off go build -o "$WORK/gen" .)

psql -q "$BASE_URL" -c "create database $DB" >/dev/null
DB_CREATED=1

DATABASE_URL="$DB_URL" STRIPE_WEBHOOK_SECRET="$SECRET" PORT="$PORT" \
	node "$HERE/server.mjs" >/dev/null 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 300); do
	curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
	sleep 0.1
done
curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null || { echo "server not ready" >&2; cat "$WORK/server.log" >&2; exit 1; }

gen() { "$WORK/gen" -url "http://127.0.0.1:$PORT/webhook" -secret "$SECRET" -fixtures "$FIXTURES" -clients "$CLIENTS" "$@"; }

# utime+stime in clock ticks of each pid given, one "pid ticks" line each
# (fields 14 and 15 of /proc/<pid>/stat, counted after the ")" closing comm).
ticks() {
	local pid stat
	for pid in "$@"; do
		stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
		stat="${stat##*) }"
		awk -v pid="$pid" '{ print pid, $12 + $13 }' <<<"$stat"
	done
}
# CPU ticks used between two snapshots, per pid (new pids count from zero,
# pids gone by the second snapshot are missed: approximate for PostgreSQL).
# With a third argument, only the pids listed in it (one a line).
delta() {
	awk -v only="${3:+$(cat "$3")}" 'BEGIN { n = split(only, pids); for (i = 1; i <= n; i++) keep[pids[i]] = 1 }
		NR == FNR { before[$1] = $2; next }
		!n || ($1 in keep) { sum += $2 - before[$1] } END { print sum + 0 }' "$1" "$2"
}

((WARMUP > 0)) && gen -tag w -customers "$WARMUP" >/dev/null

ticks "$SERVER_PID" >"$WORK/node.0"
ticks $(pgrep -x postgres || true) >"$WORK/pg.0"
RESULT="$(gen -tag c -customers "$CUSTOMERS")"
ticks "$SERVER_PID" >"$WORK/node.1"
ticks $(pgrep -x postgres || true) >"$WORK/pg.1"
psql -qAt "$BASE_URL" -c "select pid from pg_stat_activity where datname = '$DB' and application_name = 'stripe-sync-engine'" >"$WORK/pool.pids"

declare -A r
for kv in $RESULT; do r[${kv%%=*}]="${kv#*=}"; done
HZ="$(getconf CLK_TCK)"
per_event() { awk -v t="$1" -v hz="$HZ" -v n="${r[events]}" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }'; }
NODE_US="$(per_event "$(delta "$WORK/node.0" "$WORK/node.1")")"
# PostgreSQL's processes are only visible when it runs on this host.
PG_US=n/a POOL_US=n/a
if [[ -s "$WORK/pg.1" ]]; then
	PG_US="$(per_event "$(delta "$WORK/pg.0" "$WORK/pg.1")")"
	[[ -s "$WORK/pool.pids" ]] && POOL_US="$(per_event "$(delta "$WORK/pg.0" "$WORK/pg.1" "$WORK/pool.pids")")"
fi

echo "stripe-sync-engine $VERSION: ${r[events]} events in ${r[seconds]}s = ${r[rate]} events/s ($CLIENTS clients), p50 ${r[p50_ms]}ms p99 ${r[p99_ms]}ms, non-2xx ${r[non2xx]}, node CPU $NODE_US µs/event, postgres CPU $PG_US µs/event (approximate: every postgres process on this host; the pool's $(wc -l <"$WORK/pool.pids") backends $POOL_US)"

# Every event written: one customer row with its email and one paid invoice
# (of the right customer) per customer, warm-up included.
EXPECTED=$((CUSTOMERS + WARMUP))
read -r customers emails invoices paid linked < <(psql -qAt -F ' ' "$DB_URL" -c "
	select (select count(*) from stripe.customers),
	       (select count(*) from stripe.customers where email like 'bench+%@example.com'),
	       (select count(*) from stripe.invoices),
	       (select count(*) from stripe.invoices where status = 'paid'),
	       (select count(*) from stripe.invoices i join stripe.customers c
	          on c.id = i.customer and c.email = 'bench+' || substr(i.id, length(i.id) - 6) || '@example.com')")
echo "rows (expected $EXPECTED each): stripe.customers $customers (with email $emails), stripe.invoices $invoices (paid $paid, linked to their customer $linked)"
sed 's/^/server: /' "$WORK/server.log" >&2
for n in "$customers" "$emails" "$invoices" "$paid" "$linked"; do
	((n == EXPECTED)) || { echo "row counts do not match the events sent" >&2; exit 1; }
done
[[ ${r[non2xx]} == 0 ]] || { echo "some requests failed" >&2; exit 1; }
