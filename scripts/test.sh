#!/usr/bin/env bash
# Runs every module's tests. They need PostgreSQL (DATABASE_URL, else
# 127.0.0.1:5432, else a private cluster) and the separate NATS server
# (NATS_TEST_URL, else nats://127.0.0.1:4222); each test starts its own
# embedded JetStream server too. Extra `go test` flags may be passed in
# GOTESTFLAGS (for example GOTESTFLAGS=-race).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pkgs < <(scripts/modules.sh)
# shellcheck disable=SC2086
exec go test -count=1 -timeout 15m ${GOTESTFLAGS:-} "${pkgs[@]}"
