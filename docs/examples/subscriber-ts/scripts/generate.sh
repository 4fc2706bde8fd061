#!/bin/sh
# Regenerates src/gen/ (or the folder given as $1) from the repository's
# proto/ with buf and protoc-gen-es. Needs `npm ci` first (protoc-gen-es is
# a devDependency) and Go (buf is the one pinned in proto/tools/go.mod).
#
# Outside this repository, with your own buf or protoc, the same is:
#   buf generate <path to proto/> --template buf.gen.yaml -o src/gen
#   protoc -I <path to proto/> --plugin=node_modules/.bin/protoc-gen-es \
#     --es_out=src/gen --es_opt=target=ts,import_extension=js \
#     $(cd <path to proto/> && find switchyard -name '*.proto')
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
proto=$(cd "$here/../../../proto" && pwd)
out=${1:-$here/src/gen}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
[ -x "$here/node_modules/.bin/protoc-gen-es" ] || {
  echo "generate: $here/node_modules/.bin/protoc-gen-es is missing: run npm ci in $here" >&2
  exit 1
}
PATH="$here/node_modules/.bin:$PATH"
export PATH
cd "$proto"
buf=$(GOWORK=off go -C tools tool -n buf)
"$buf" generate --template "$here/buf.gen.yaml" -o "$out"
