#!/usr/bin/env bash
# Builds the benchmark's go-plugin peer (bin/peer-host, bin/peer-plugin):
#   1. sdk/go/generate.sh --tools installs the pinned protoc-gen-go(-grpc) into sdk/go/.bin and
#      plugins/python/build.sh protoc (grpcio-tools) into plugins/python/.venv; this script uses both;
#   2. generates switchyard.v1 and benchpeer.v1 Go stubs into gen/ (when a .proto changed);
#   3. go build (always optimized; -trimpath) against go-plugin from the Go module proxy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
module="github.com/switchyard/switchyard/bench/go-peer"
gobin="$repo/sdk/go/.bin"
python="$repo/plugins/python/.venv/bin/python"

log() { printf 'go-peer build: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "error: go is not installed"; exit 1; }
"$repo/sdk/go/generate.sh" --tools >&2
"$repo/plugins/python/build.sh" >&2

mapfile -t sy_protos < <(cd "$repo/proto" && find switchyard -name '*.proto' | LC_ALL=C sort)
peer_protos=(benchpeer/v1/peer.proto)
stamp="$( ("$gobin/protoc-gen-go" --version; "$gobin/protoc-gen-go-grpc" --version
           cd "$repo/proto" && sha256sum "${sy_protos[@]}"
           cd "$here/proto" && sha256sum "${peer_protos[@]}") | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$here/gen/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    log "generating Go stubs in $here/gen"
    m_opts=()
    for proto in "${sy_protos[@]}"; do
        m_opts+=("--go_opt=M$proto=$module/gen/switchyard/v1;switchyardv1")
        m_opts+=("--go-grpc_opt=M$proto=$module/gen/switchyard/v1;switchyardv1")
    done
    tmp="$(mktemp -d "$here/.gen.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m grpc_tools.protoc -I "$repo/proto" -I "$here/proto" \
        --plugin=protoc-gen-go="$gobin/protoc-gen-go" \
        --plugin=protoc-gen-go-grpc="$gobin/protoc-gen-go-grpc" \
        --go_out="$tmp" --go_opt=module="$module" \
        --go-grpc_out="$tmp" --go-grpc_opt=module="$module" \
        "${m_opts[@]}" "${sy_protos[@]}" "${peer_protos[@]}"
    echo "$stamp" > "$tmp/gen/.stamp"
    rm -rf "$here/gen"
    mv "$tmp/gen" "$here/gen"
    rm -rf "$tmp"
    trap - EXIT
fi

log "building bin/peer-host and bin/peer-plugin"
(cd "$here" && go build -trimpath -o bin/ ./cmd/peer-host ./cmd/peer-plugin)
