#!/usr/bin/env bash
# Regenerates proto/gen/ from proto/switchyard/**/*.proto, offline and
# reproducibly; running it twice leaves no diff, and CI fails on drift.
#
# Pinned generators, built by `go tool` into the Go build cache:
#   buf            `tool` line in proto/tools/go.mod, a module of its own (not
#                  in go.work) so that importers of the proto module never
#                  inherit buf's dependencies;
#   protoc-gen-go  `tool` line in proto/go.mod, i.e. exactly the version of
#                  the google.golang.org/protobuf runtime the code runs on.
#
# Steps: buf format check, buf lint, buf breaking against the committed
# contracts (PROTO_BREAKING_AGAINST=<git ref>, default HEAD; "none" skips it),
# then buf generate (buf.gen.yaml cleans gen/ first, so deleted contracts
# leave no stale code).
set -euo pipefail
cd "$(dirname "$0")/../proto"
# Resolve each tool from its own go.mod, whatever go.work selects.
export GOWORK=off

buf=$(go -C tools tool -n buf)
protoc_gen_go=$(go tool -n protoc-gen-go)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
ln -s "$protoc_gen_go" "$bin/protoc-gen-go"
export PATH="$bin:$PATH"

"$buf" format --diff --exit-code || {
  echo "proto: .proto files are not formatted; run: (cd proto && GOWORK=off go -C tools tool buf format -w ..)" >&2
  exit 1
}
"$buf" lint

against=${PROTO_BREAKING_AGAINST:-HEAD}
top=$(git rev-parse --show-toplevel 2>/dev/null || true)
if [ "$against" != none ] && [ -n "$top" ] && git cat-file -e "$against:proto/buf.yaml" 2>/dev/null; then
  "$buf" breaking --against "$top/.git#ref=$against,subdir=proto"
fi

"$buf" generate
echo "proto: generated $(find gen -name '*.pb.go' | wc -l) file(s) from $(find switchyard -name '*.proto' | wc -l) contract(s)"
