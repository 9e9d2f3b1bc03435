#!/usr/bin/env bash
# Builds the Go side of Switchyard's plugins:
#   1. installs the pinned protoc-gen-go and protoc-gen-go-grpc into plugins/go/.bin,
#   2. generates the switchyard.v1 Go stubs from proto/ into plugins/go/gen/ (protoc comes
#      from grpcio-tools in plugins/python/.venv, built by plugins/python/build.sh),
#   3. builds bin/echo-go and bin/host-go.
# Idempotent and quick when nothing changed (the stubs' stamp hashes the .proto files and
# generator versions; `go build` caches the rest).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
proto_dir="$repo/proto"
gobin="$here/.bin"
gen="$here/gen"
module="github.com/switchyard/switchyard/plugins/go"

# Keep these in step with go.mod's google.golang.org/protobuf and google.golang.org/grpc.
protoc_gen_go_version="v1.36.12"
protoc_gen_go_grpc_version="v1.6.2"

log() { printf 'go build: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "error: go is not installed"; exit 1; }

# protoc (from grpcio-tools) lives in the Python virtualenv.
"$repo/plugins/python/build.sh"
python="$repo/plugins/python/.venv/bin/python"

mkdir -p "$gobin"
if [[ "$("$gobin/protoc-gen-go" --version 2>/dev/null)" != "protoc-gen-go $protoc_gen_go_version" ]]; then
    log "installing protoc-gen-go $protoc_gen_go_version"
    GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$protoc_gen_go_version"
fi
if [[ "$("$gobin/protoc-gen-go-grpc" --version 2>/dev/null)" != "protoc-gen-go-grpc ${protoc_gen_go_grpc_version#v}" ]]; then
    log "installing protoc-gen-go-grpc $protoc_gen_go_grpc_version"
    GOBIN="$gobin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$protoc_gen_go_grpc_version"
fi

# The protos' go_package options name github.com/switchyard/switchyard/gen/go/...; M options map
# each file into this module's gen/ instead, so no proto change is needed.
mapfile -t protos < <(cd "$proto_dir" && find switchyard -name '*.proto' | LC_ALL=C sort)
stamp="$( (echo "$protoc_gen_go_version $protoc_gen_go_grpc_version"; "$python" -m grpc_tools.protoc --version;
           cd "$proto_dir" && sha256sum "${protos[@]}") | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$gen/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    log "generating Go stubs in $gen"
    m_opts=()
    for proto in "${protos[@]}"; do
        m_opts+=("--go_opt=M$proto=$module/gen/switchyard/v1;switchyardv1")
        m_opts+=("--go-grpc_opt=M$proto=$module/gen/switchyard/v1;switchyardv1")
    done
    tmp="$(mktemp -d "$here/.gen.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m grpc_tools.protoc -I "$proto_dir" \
        --plugin=protoc-gen-go="$gobin/protoc-gen-go" \
        --plugin=protoc-gen-go-grpc="$gobin/protoc-gen-go-grpc" \
        --go_out="$tmp" --go_opt=module="$module" \
        --go-grpc_out="$tmp" --go-grpc_opt=module="$module" \
        "${m_opts[@]}" "${protos[@]}"
    echo "$stamp" > "$tmp/gen/.stamp"
    rm -rf "$gen"
    mv "$tmp/gen" "$gen"
    rm -rf "$tmp"
    trap - EXIT
else
    log "Go stubs up to date"
fi

log "building bin/echo-go and bin/host-go"
(cd "$here" && go build -o bin/ ./cmd/echo-go ./cmd/host-go)
