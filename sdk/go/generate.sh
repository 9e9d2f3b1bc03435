#!/usr/bin/env bash
# Generates the Go SDK's switchyard.v1 stubs (sdk/go/switchyardv1/, committed so that
# `go get github.com/switchyard/switchyard/sdk/go` works without protoc) from proto/.
#
#   sdk/go/generate.sh           # regenerate sdk/go/switchyardv1 in place
#   sdk/go/generate.sh --check   # regenerate into a temp dir; fail if the committed stubs differ
#   sdk/go/generate.sh --tools   # only install the generators (bench/go-peer reuses them)
#
# protoc comes from grpcio-tools in plugins/python/.venv (built by plugins/python/build.sh,
# which this script runs); the pinned protoc-gen-go and protoc-gen-go-grpc are installed
# into sdk/go/.bin (git-ignored) with `go install`. The protos' go_package option names
# github.com/switchyard/switchyard/sdk/go/switchyardv1, so the output lands in place.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
proto_dir="$repo/proto"
gobin="$here/.bin"
module="github.com/switchyard/switchyard/sdk/go"

# Keep these in step with go.mod's google.golang.org/protobuf and google.golang.org/grpc.
protoc_gen_go_version="v1.36.12"
protoc_gen_go_grpc_version="v1.6.2"

log() { printf 'sdk/go generate: %s\n' "$*" >&2; }

mode="${1:-generate}"
case "$mode" in
    generate | --check | --tools) ;;
    *) log "usage: $0 [--check | --tools]"; exit 2 ;;
esac

command -v go >/dev/null || { log "error: go is not installed"; exit 1; }

mkdir -p "$gobin"
if [[ "$("$gobin/protoc-gen-go" --version 2>/dev/null)" != "protoc-gen-go $protoc_gen_go_version" ]]; then
    log "installing protoc-gen-go $protoc_gen_go_version"
    GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$protoc_gen_go_version"
fi
if [[ "$("$gobin/protoc-gen-go-grpc" --version 2>/dev/null)" != "protoc-gen-go-grpc ${protoc_gen_go_grpc_version#v}" ]]; then
    log "installing protoc-gen-go-grpc $protoc_gen_go_grpc_version"
    GOBIN="$gobin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$protoc_gen_go_grpc_version"
fi
[[ "$mode" == "--tools" ]] && exit 0

# protoc (from grpcio-tools, pinned in plugins/python/requirements.txt) lives in the Python virtualenv.
"$repo/plugins/python/build.sh" >&2
python="$repo/plugins/python/.venv/bin/python"

mapfile -t protos < <(cd "$proto_dir" && find switchyard -name '*.proto' | LC_ALL=C sort)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -I "$proto_dir" \
    --plugin=protoc-gen-go="$gobin/protoc-gen-go" \
    --plugin=protoc-gen-go-grpc="$gobin/protoc-gen-go-grpc" \
    --go_out="$tmp" --go_opt=module="$module" \
    --go-grpc_out="$tmp" --go-grpc_opt=module="$module" \
    "${protos[@]}"

if [[ "$mode" == "--check" ]]; then
    if ! diff -ru "$here/switchyardv1" "$tmp/switchyardv1" >&2; then
        log "error: sdk/go/switchyardv1 is out of date with proto/: run sdk/go/generate.sh and commit the result"
        exit 1
    fi
    log "sdk/go/switchyardv1 is up to date"
    exit 0
fi

rm -rf "$here/switchyardv1"
mv "$tmp/switchyardv1" "$here/switchyardv1"
log "generated $here/switchyardv1"
