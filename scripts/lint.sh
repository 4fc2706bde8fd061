#!/usr/bin/env bash
# gofmt, go vet and staticcheck over every module in go.work.
set -euo pipefail
cd "$(dirname "$0")/.."
STATICCHECK_VERSION=v0.8.2
mapfile -t pkgs < <(scripts/modules.sh)

unformatted=$(git ls-files '*.go' | xargs gofmt -l)
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files:"; echo "$unformatted"; exit 1
fi
go vet "${pkgs[@]}"
go vet -tags e2e ./services/switchyard # the Jaeger end-to-end test (make e2e)
go run "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" "${pkgs[@]}"
go run "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" -tags e2e ./services/switchyard
echo "lint: ok"
