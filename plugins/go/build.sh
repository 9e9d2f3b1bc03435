#!/usr/bin/env bash
# Builds bin/echo-go and bin/host-go. The switchyard.v1 Go stubs come from the Go SDK
# (sdk/go/switchyardv1, committed; regenerate with sdk/go/generate.sh), used through
# go.mod's replace directive, so nothing is generated here. Quick when nothing changed
# (`go build` caches).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'go build: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "error: go is not installed"; exit 1; }

log "building bin/echo-go and bin/host-go"
(cd "$here" && go build -o bin/ ./cmd/echo-go ./cmd/host-go)
