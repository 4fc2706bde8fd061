#!/usr/bin/env bash
# gofmt, go vet and staticcheck over every module in go.work, and the
# generated docs/configuration.md checked against the config code.
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
# docs/configuration.md is generated from the config code (make docs).
configdoc=$(mktemp)
trap 'rm -f "$configdoc"' EXIT
go run ./scripts/configdoc -w "$configdoc"
if ! diff -u docs/configuration.md "$configdoc"; then
  echo "docs/configuration.md is stale: the config code changed; run make docs and commit the result"; exit 1
fi
echo "lint: ok"
