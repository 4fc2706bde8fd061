#!/usr/bin/env bash
# End-to-end tracing test (make e2e): starts a real Jaeger v2 (in-memory
# storage, OTLP/HTTP in, query API out) on free loopback ports, runs
# TestTracesInJaeger (services/switchyard/e2e_test.go, build tag e2e) against
# it, and always stops Jaeger.
#
# Jaeger is the pinned `tool` line of scripts/jaeger/go.mod, a module of its
# own and not in go.work (like proto/tools), built by `go tool` into the Go
# build cache: about 7 minutes on a cold cache, about a second warm.
# JAEGER_BIN=/path/to/jaeger uses another binary. Extra `go test` flags may
# be passed in GOTESTFLAGS (GOTESTFLAGS=-v prints the traces' trees).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

t0=$(date +%s%N)
if [ -n "${JAEGER_BIN:-}" ]; then
  jaeger=$JAEGER_BIN
else
  echo "e2e: resolving Jaeger (GOWORK=off go tool -n jaeger in scripts/jaeger; a cold build takes ~7 min)"
  jaeger=$(cd scripts/jaeger && GOWORK=off go tool -n jaeger)
fi
[ -x "$jaeger" ] || { echo "e2e: no Jaeger binary at $jaeger" >&2; exit 1; }
echo "e2e: jaeger binary $jaeger ready in $(ms "$t0") ms"

work=$(mktemp -d)
pid=""
stop_jaeger() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
cleanup() {
  stop_jaeger
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: nothing accepts connections on it and it is not one
# already picked. Jaeger binds them right after; a lost race is retried.
picked=" "
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    case "$picked" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      picked="$picked$p "
      echo "$p"
      return
    fi
  done
}

http_ok() {
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null
  else
    local hostport=${1#http://} path
    path=/${hostport#*/}; hostport=${hostport%%/*}
    (exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}" &&
      printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3 &&
      head -1 <&3 | grep -q ' 200 ') 2>/dev/null
  fi
}

t1=$(date +%s%N)
healthy=""
for attempt in 1 2 3; do
  otlp_port=$(free_port); query_port=$(free_port); grpc_port=$(free_port); health_port=$(free_port)
  JAEGER_OTLP_HTTP=127.0.0.1:$otlp_port JAEGER_QUERY_HTTP=127.0.0.1:$query_port \
    JAEGER_QUERY_GRPC=127.0.0.1:$grpc_port JAEGER_HEALTH_HTTP=127.0.0.1:$health_port \
    "$jaeger" --config "$root/scripts/jaeger/jaeger.yaml" >"$work/jaeger.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do # 30 s
    if http_ok "http://127.0.0.1:$health_port/status"; then healthy=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$healthy" ] && break
  echo "e2e: Jaeger did not become healthy (attempt $attempt):" >&2
  tail -20 "$work/jaeger.log" >&2
  stop_jaeger
done
[ -n "$healthy" ] || { echo "e2e: could not start Jaeger" >&2; exit 1; }
echo "e2e: jaeger healthy in $(ms "$t1") ms (pid $pid): OTLP http://127.0.0.1:$otlp_port, query http://127.0.0.1:$query_port"

t2=$(date +%s%N)
status=0
# shellcheck disable=SC2086
E2E_JAEGER_QUERY_URL="http://127.0.0.1:$query_port" E2E_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port" \
  go test -tags e2e -count=1 -timeout 10m ${GOTESTFLAGS:-} -run TestTracesInJaeger ./services/switchyard || status=$?
echo "e2e: go test took $(ms "$t2") ms (exit $status)"
if [ "$status" -ne 0 ] && [ -s "$work/jaeger.log" ]; then
  echo "e2e: Jaeger's log:"; grep -v "ui assets not embedded" "$work/jaeger.log" | tail -20 || true
fi
exit "$status"
