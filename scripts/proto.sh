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
# Steps: buf format check, buf lint, buf breaking (below), then buf
# generate (buf.gen.yaml cleans gen/ first, so deleted contracts leave no
# stale code), then the machine-readable contract, proto/subjects.json and
# proto/asyncapi.yaml, from the generated code (scripts/asyncapi; `make
# contract` validates the AsyncAPI document).
#
# buf breaking compares the contracts in the working tree with those of a
# git ref, PROTO_BREAKING_AGAINST ("none" skips the check). By default:
#   - on a branch off main: where it left main (git merge-base main HEAD),
#     so the check covers everything the branch changes and nothing main
#     changed since;
#   - on main itself (or a branch not ahead of it): HEAD's parent, so the
#     last commit's contract change is still checked after it is made;
#   - HEAD when neither has proto/buf.yaml (the first commit, a shallow
#     clone): then only uncommitted changes are checked.
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

# The default breaking-change baseline (see the header).
default_against() {
  local base
  if git rev-parse -q --verify 'main^{commit}' >/dev/null; then
    base=$(git merge-base main HEAD 2>/dev/null || true)
    if [ -n "$base" ] && [ "$base" != "$(git rev-parse HEAD)" ] && git cat-file -e "$base:proto/buf.yaml" 2>/dev/null; then
      echo "$base"; return
    fi
  fi
  if git cat-file -e 'HEAD~1:proto/buf.yaml' 2>/dev/null; then
    echo 'HEAD~1'; return
  fi
  echo HEAD
}
top=$(git rev-parse --show-toplevel 2>/dev/null || true)
against=${PROTO_BREAKING_AGAINST:-}
if [ -z "$against" ] && [ -n "$top" ]; then
  against=$(default_against)
fi
if [ "$against" != none ] && [ -n "$top" ] && git cat-file -e "$against:proto/buf.yaml" 2>/dev/null; then
  echo "proto: buf breaking against $against ($(git rev-parse --short "$against^{commit}"))"
  "$buf" breaking --against "$top/.git#ref=$against,subdir=proto"
fi

"$buf" generate
echo "proto: generated $(find gen -name '*.pb.go' | wc -l) file(s) from $(find switchyard -name '*.proto' | wc -l) contract(s)"

# The machine-readable contract, built against the code just generated
# (in the workspace, so it links the generated descriptors).
(cd .. && env -u GOWORK go run ./scripts/asyncapi -proto proto)
