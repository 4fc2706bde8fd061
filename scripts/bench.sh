#!/usr/bin/env bash
# bench.sh — what `make bench` runs: the gateway against the textbook Stripe
# webhook handler and the raw JetStream publish ceiling, on one machine.
#
# For each target it starts a fresh standalone JetStream server (scripts/bench
# cmd/natsd, new empty store, so stream size never skews a later target),
# starts the target, waits for it to be ready, then drives it with the
# separate-process load generator (cmd/loadgen): open loop at each rate in
# BENCH_RATES, then a closed loop at saturation with BENCH_CONCURRENCY
# clients. It prints every run and a summary table. Generator, target and
# broker share the machine's cores: compare targets, not absolute numbers.
#
# Environment (all optional):
#   BENCH_TARGETS      targets, in order (default: jetstream-ceiling textbook gateway)
#   BENCH_DURATION     length of each run, Go duration (default: 10s)
#   BENCH_RATES        open-loop offered rates per second (default: 1000 5000)
#   BENCH_CONCURRENCY  closed-loop clients / JetStream publishers (default: 64)
#   BENCH_WARMUP       unrecorded run at 1000/s before each target's runs (default: 2s; 0 skips)
#   BENCH_FIXTURE      Stripe events sent as request bodies: a comma-separated
#                      list of event files and/or directories (a directory means
#                      every *.json in it but MANIFEST.json and signatures.json,
#                      sorted by name); request i uses event i mod n, a fixed
#                      round-robin mix. Default: the directory
#                      $ROOT/platform/devkit/testkit/fixtures/stripe/events, the
#                      assembled envelopes (1-5 KB, a realistic mix of types).
#                      A single file still works, e.g. only the 1 KB event:
#                      BENCH_FIXTURE=$ROOT/platform/devkit/testkit/fixtures/stripe/events/customer.created.json
#                      Every report line gives fixtures=<n> mean_body=<bytes>.
#   BENCH_PPROF=1      also take a CPU profile of the textbook handler and the
#                      gateway during their saturation run (from 1 s in to 1 s
#                      before its end; the gateway serves it on its admin
#                      listener with GATEWAY_PPROF=1, the textbook handler on
#                      BENCH_TEXTBOOK_PPROF_ADDR) and print, after the summary,
#                      each one's CPU by group (cmd/profsum: signature, JSON,
#                      HTTP server, NATS client, syscalls, GC, …, with µs per
#                      request) and `go tool pprof -top` by flat and by cum.
#                      Profiling costs the target a few per cent of CPU, in
#                      that run's cpu_us/req too. BENCH_KEEP=1 keeps the
#                      profiles (cpu-<target>.pprof in the work directory).
#   BENCH_NATS_PORT, BENCH_TEXTBOOK_ADDR, BENCH_TEXTBOOK_PPROF_ADDR, BENCH_GATEWAY_ADDR, BENCH_GATEWAY_ADMIN_ADDR   loopback ports
#   BENCH_KEEP=1       keep the work directory (logs, stores) after the run
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGETS="${BENCH_TARGETS:-jetstream-ceiling textbook gateway}"
DURATION="${BENCH_DURATION:-10s}"
RATES="${BENCH_RATES:-1000 5000}"
CONCURRENCY="${BENCH_CONCURRENCY:-64}"
WARMUP="${BENCH_WARMUP:-2s}"
NATS_PORT="${BENCH_NATS_PORT:-14222}"
NATS_URL="nats://127.0.0.1:${NATS_PORT}"
TEXTBOOK_ADDR="${BENCH_TEXTBOOK_ADDR:-127.0.0.1:18081}"
TEXTBOOK_PPROF_ADDR="${BENCH_TEXTBOOK_PPROF_ADDR:-127.0.0.1:18087}"
GATEWAY_ADDR="${BENCH_GATEWAY_ADDR:-127.0.0.1:18080}"
GATEWAY_ADMIN_ADDR="${BENCH_GATEWAY_ADMIN_ADDR:-127.0.0.1:18086}" # readiness is served there only
PPROF=0
[[ "${BENCH_PPROF:-}" == 1 ]] && PPROF=1
SECRET="whsec_bench$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# The in-repo, byte-exact copy of shared/fixtures (see platform/devkit/testkit/fixtures).
FIXTURE="${BENCH_FIXTURE:-$ROOT/platform/devkit/testkit/fixtures/stripe/events}"
IFS=, read -ra FIXTURE_ENTRIES <<<"$FIXTURE"
for entry in "${FIXTURE_ENTRIES[@]}"; do
	# loadgen trims spaces around entries too.
	entry="${entry#"${entry%%[![:space:]]*}"}"
	entry="${entry%"${entry##*[![:space:]]}"}"
	[[ -e "$entry" ]] || {
		echo "bench: Stripe fixture '$entry' not found; set BENCH_FIXTURE" >&2
		exit 1
	}
done

WORK="$(mktemp -d -t switchyard-bench.XXXXXX)"
BIN="$WORK/bin"
RESULTS="$WORK/results.txt"
: >"$RESULTS"
PIDS=()      # every process this script started
NATSD_PID="" # current broker
TARGET_PID="" # current target process, if any
PROFILER_PID="" # current CPU profile download (BENCH_PPROF=1), if any

log() { printf 'bench: %s\n' "$*" >&2; }

# stop PID: SIGTERM, then SIGKILL if it has not exited within 10 s.
stop() {
	local pid="$1"
	[[ -n "$pid" ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	log "pid $pid ignored SIGTERM for 10s; killing"
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# Newest first: the generator, then the target, then the broker.
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[i]}"; done
	if ((rc != 0)); then
		for f in "$WORK"/*.log; do
			[[ -s "$f" ]] || continue
			log "last lines of $f:"
			tail -n 20 "$f" >&2
		done
	fi
	if [[ "${BENCH_KEEP:-}" == 1 ]]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_until DESCRIPTION PID SECONDS COMMAND...: polls COMMAND every 100 ms
# until it succeeds, failing if PID dies or the deadline passes.
wait_until() {
	local what="$1" pid="$2" seconds="$3"
	shift 3
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null || { log "$what: process exited before it was ready"; return 1; }
		((SECONDS < deadline)) || { log "$what: not ready within ${seconds}s"; return 1; }
		sleep 0.1
	done
}

http_ready() { curl -fsS --max-time 1 -o /dev/null "$1"; }

# require_free HOST:PORT: fail fast when something already listens there,
# instead of benchmarking a stale process.
require_free() {
	local host="${1%:*}" port="${1##*:}"
	if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
		log "$1 is already in use; stop what listens there or set BENCH_*_ADDR / BENCH_NATS_PORT"
		return 1
	fi
}

start_natsd() {
	local name="$1"
	local store="$WORK/store-$name"
	require_free "127.0.0.1:$NATS_PORT"
	mkdir -p "$store"
	"$BIN/natsd" -addr 127.0.0.1 -port "$NATS_PORT" -store "$store" >"$WORK/natsd-$name.log" 2>&1 &
	NATSD_PID=$!
	PIDS+=("$NATSD_PID")
	wait_until natsd "$NATSD_PID" 15 grep -q '^natsd ready' "$WORK/natsd-$name.log"
}

stop_natsd() {
	stop "$NATSD_PID"
	rm -rf "$WORK/store-$1" # the next target starts on an empty store
	NATSD_PID=""
}

start_target() {
	local name="$1"
	case "$name" in
	jetstream-ceiling) TARGET_PID="" ;;
	textbook)
		require_free "$TEXTBOOK_ADDR"
		local pprof_args=()
		if [[ "$PPROF" == 1 ]]; then
			require_free "$TEXTBOOK_PPROF_ADDR"
			pprof_args=(-pprof "$TEXTBOOK_PPROF_ADDR")
		fi
		"$BIN/textbook" -addr "$TEXTBOOK_ADDR" -nats "$NATS_URL" -secret "$SECRET" "${pprof_args[@]}" >"$WORK/textbook.log" 2>&1 &
		TARGET_PID=$!
		PIDS+=("$TARGET_PID")
		wait_until textbook "$TARGET_PID" 30 http_ready "http://$TEXTBOOK_ADDR/readyz"
		;;
	gateway)
		require_free "$GATEWAY_ADDR"
		require_free "$GATEWAY_ADMIN_ADDR"
		# The gateway only checks for its streams: make them as a deploy would.
		NATS_URL="$NATS_URL" "$BIN/switchyard" migrate --nats-only >"$WORK/migrate.log" 2>&1 ||
			{ log "switchyard migrate failed:"; cat "$WORK/migrate.log" >&2; exit 1; }
		GATEWAY_ADDR="$GATEWAY_ADDR" GATEWAY_ADMIN_ADDR="$GATEWAY_ADMIN_ADDR" NATS_URL="$NATS_URL" STRIPE_WEBHOOK_SECRET="$SECRET" \
			SWITCHYARD_ENV=development LOG_LEVEL=warn GATEWAY_PPROF="$PPROF" \
			"$BIN/gateway" >"$WORK/gateway.log" 2>&1 &
		TARGET_PID=$!
		PIDS+=("$TARGET_PID")
		wait_until gateway "$TARGET_PID" 30 http_ready "http://$GATEWAY_ADMIN_ADDR/readyz"
		;;
	*)
		log "unknown target $name (want jetstream-ceiling, textbook or gateway)"
		return 1
		;;
	esac
}

# loadgen NAME DURATION [ARGS...]: one run against target NAME; its report
# line goes to stdout.
loadgen() {
	local name="$1" duration="$2"
	shift 2
	local mode_args=()
	case "$name" in
	jetstream-ceiling) mode_args=(-mode jetstream -nats "$NATS_URL") ;;
	textbook) mode_args=(-mode http -url "http://$TEXTBOOK_ADDR/webhooks/stripe" -secret "$SECRET") ;;
	gateway) mode_args=(-mode http -url "http://$GATEWAY_ADDR/webhooks/stripe" -secret "$SECRET") ;;
	esac
	# In the background and waited for, so a signal to this script is handled
	# at once rather than after the run.
	"$BIN/loadgen" -target "$name" "${mode_args[@]}" -fixture "$FIXTURE" -duration "$duration" "$@" >"$WORK/run.out" &
	local pid=$!
	PIDS+=("$pid")
	wait "$pid"
	cat "$WORK/run.out"
	if [[ -n "$TARGET_PID" ]] && ! kill -0 "$TARGET_PID" 2>/dev/null; then
		log "$name exited during the run"
		return 1
	fi
}

bench_target() {
	local name="$1"
	log "target $name"
	start_natsd "$name"
	start_target "$name"
	local pool=()
	[[ "$name" == jetstream-ceiling ]] && pool=(-concurrency "$CONCURRENCY")
	# Warm up connections, the stream's first blocks and the heaps, so the
	# first recorded run does not carry start-up costs the others do not.
	if [[ "$WARMUP" != 0 && "$WARMUP" != 0s ]]; then
		loadgen "$name" "$WARMUP" -rate 1000 "${pool[@]}" >"$WORK/warmup.out"
		sed 's/^/warmup: /' "$WORK/warmup.out" >&2
	fi
	for rate in $RATES; do
		measured "$name" "$DURATION" -rate "$rate" "${pool[@]}"
		tail -n 1 "$RESULTS"
	done
	PROFILER_PID=""
	[[ "$PPROF" == 1 ]] && start_profile "$name"
	measured "$name" "$DURATION" -concurrency "$CONCURRENCY"
	tail -n 1 "$RESULTS"
	if [[ -n "$PROFILER_PID" ]] && ! wait "$PROFILER_PID"; then
		log "CPU profile of $name failed: $(cat "$WORK/profile-$name.log")"
		rm -f "$WORK/cpu-$name.pprof"
	fi
	stop "$TARGET_PID"
	TARGET_PID=""
	stop_natsd "$name"
}

# duration_seconds DURATION: a Go duration (10s, 1m30s, 2500ms) in whole seconds.
duration_seconds() {
	awk -v d="$1" 'BEGIN {
		while (match(d, /^[0-9.]+(h|m|s|ms|us|ns)/)) {
			t = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
			u = t; sub(/^[0-9.]+/, "", u)
			s += (t + 0) * (u == "h" ? 3600 : u == "m" ? 60 : u == "s" ? 1 : u == "ms" ? 0.001 : 0)
		}
		printf "%d\n", s
	}'
}

# start_profile NAME: in the background, a CPU profile of target NAME's
# process into $WORK/cpu-NAME.pprof, from 1 s into the run about to start to
# 1 s before its end. PROFILER_PID is the fetching process (empty: NAME has
# no process of its own to profile).
start_profile() {
	local name="$1" url seconds
	case "$name" in
	textbook) url="http://$TEXTBOOK_PPROF_ADDR/debug/pprof/profile" ;;
	gateway) url="http://$GATEWAY_ADMIN_ADDR/debug/pprof/profile" ;;
	*) return 0 ;;
	esac
	seconds=$(($(duration_seconds "$DURATION") - 2))
	((seconds >= 1)) || seconds=1
	(
		sleep 1
		exec curl -fsS --max-time $((seconds + 30)) -o "$WORK/cpu-$name.pprof" "$url?seconds=$seconds"
	) >"$WORK/profile-$name.log" 2>&1 &
	PROFILER_PID=$!
	PIDS+=("$PROFILER_PID")
}

# cpu_ticks PID: user+system CPU time of PID so far, in clock ticks.
cpu_ticks() {
	[[ -n "$1" && -r "/proc/$1/stat" ]] || { echo 0; return; }
	# Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# measured NAME DURATION ARGS...: one loadgen run appended to the results,
# with the CPU time the target process and the broker spent per request
# (microseconds): what each request costs the server side, whatever the
# generator sharing the machine costs.
measured() {
	local name="$1"
	local tps t0 b0 t1 b1 line ok
	tps=$(getconf CLK_TCK)
	t0=$(cpu_ticks "$TARGET_PID") # 0 for the ceiling: the generator publishes itself
	b0=$(cpu_ticks "$NATSD_PID")
	# Not in $(…): loadgen must run in this shell so its pid is tracked for cleanup.
	loadgen "$@" >"$WORK/measured.out"
	line=$(<"$WORK/measured.out")
	t1=$(cpu_ticks "$TARGET_PID")
	b1=$(cpu_ticks "$NATSD_PID")
	ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
	awk -v l="$line" -v t=$((t1 - t0)) -v b=$((b1 - b0)) -v n="${ok:-0}" -v hz="$tps" 'BEGIN {
		if (n > 0 && t > 0) printf "%s target_cpu_us=%.1f broker_cpu_us=%.1f\n", l, t * 1e6 / hz / n, b * 1e6 / hz / n
		else if (n > 0) printf "%s target_cpu_us=- broker_cpu_us=%.1f\n", l, b * 1e6 / hz / n
		else print l
	}' >>"$RESULTS"
}

summary() {
	awk '
	{
		delete v
		for (i = 1; i <= NF; i++) {
			eq = index($i, "=")
			if (eq) v[substr($i, 1, eq - 1)] = substr($i, eq + 1)
		}
		rate = v["offered"] == "max" ? "sat(" v["concurrency"] ")" : v["offered"]
		printf "%-18s %-10s %12s %10s %10s %8s %12s %12s\n", v["target"], rate, v["achieved"], v["p50"], v["p99"], v["errors"], v["target_cpu_us"], v["broker_cpu_us"]
		if (v["offered"] == "max") cpu[v["target"]] = v["target_cpu_us"]
		if (v["offered"] == "max") { sub("/s", "", v["achieved"]); sat[v["target"]] = v["achieved"] }
		if (v["offered"] == "5000/s") p99at5k[v["target"]] = v["p99"]
	}
	END {
		if (("gateway" in sat) && ("textbook" in sat) && sat["textbook"] > 0)
			printf "\ngateway/textbook throughput at saturation: %.2fx (target >= 2x)\n", sat["gateway"] / sat["textbook"]
		if (("gateway" in cpu) && ("textbook" in cpu) && cpu["gateway"] > 0)
			printf "textbook/gateway CPU per request at saturation (target process only): %.2fx\n", cpu["textbook"] / cpu["gateway"]
		if ("gateway" in p99at5k)
			printf "gateway p99 at 5000/s offered: %s (target < 10ms)\n", p99at5k["gateway"]
	}' "$RESULTS" | {
		printf "%-18s %-10s %12s %10s %10s %8s %12s %12s\n" target rate achieved p50 p99 errors "cpu_us/req" "broker_us/req"
		cat
	}
}

# profiles: each CPU profile start_profile took, summed by cmd/profsum (with
# µs per request from that saturation run's target_cpu_us) and by function.
profiles() {
	local name file cpu
	for name in $TARGETS; do
		file="$WORK/cpu-$name.pprof"
		[[ -s "$file" ]] || continue
		cpu=$(sed -n "s/^target=$name .* offered=max .* target_cpu_us=\([0-9.]*\) .*/\1/p" "$RESULTS")
		echo
		echo "CPU profile of $name at saturation ($CONCURRENCY clients), by group:"
		"$BIN/profsum" -per-request "${cpu:-0}" "$file"
		echo
		echo "$name, top 15 functions by flat:"
		go tool pprof -top -nodecount=15 "$file" 2>/dev/null | sed -n '/^ *flat /,$p'
		echo
		echo "$name, top 15 functions by cum:"
		go tool pprof -top -cum -nodecount=15 "$file" 2>/dev/null | sed -n '/^ *flat /,$p'
	done
}

main() {
	log "building into $BIN"
	mkdir -p "$BIN"
	(cd "$ROOT/scripts/bench" && go build -o "$BIN/" ./cmd/natsd ./cmd/textbook ./cmd/loadgen)
	if [[ "$PPROF" == 1 ]]; then
		(cd "$ROOT/scripts/bench" && go build -o "$BIN/" ./cmd/profsum)
	fi
	if [[ " $TARGETS " == *" gateway "* ]]; then
		(cd "$ROOT" && go build -o "$BIN/gateway" ./services/gateway/cmd/gateway && go build -o "$BIN/switchyard" ./services/switchyard)
	fi
	log "targets: $TARGETS; runs of $DURATION at ${RATES// //s, }/s and saturation ($CONCURRENCY clients); $(nproc) cores shared by generator, target and broker"
	log "request bodies: $FIXTURE (round-robin)"
	for target in $TARGETS; do
		bench_target "$target"
	done
	echo
	summary
	if [[ "$PPROF" == 1 ]]; then
		profiles
	fi
}

main
