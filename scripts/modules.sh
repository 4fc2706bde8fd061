#!/usr/bin/env bash
# Prints the package pattern of every module in go.work, one per line
# (github.com/…/platform/... etc.), so each tool covers all modules.
set -euo pipefail
cd "$(dirname "$0")/.."
go list -m -f '{{.Path}}/...'
