#!/usr/bin/env bash
# Builds the Python side of Switchyard's plugins: a virtualenv in
# plugins/python/.venv with the pinned requirements, and the gRPC stubs for
# proto/ in plugins/python/switchyard_plugin/_gen/ (shipped inside the package, see
# pyproject.toml). Idempotent: does nothing when both are up to
# date (the stamps hash requirements.txt and every .proto file).
#
# Usage: plugins/python/build.sh        (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
proto_dir="$repo/proto"
venv="$here/.venv"
gen="$here/switchyard_plugin/_gen"
python="${PYTHON:-python3}"

log() { printf 'python build: %s\n' "$*" >&2; }

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
    log "error: $python is missing or older than 3.9 (set PYTHON=/path/to/python3)"
    exit 1
fi

# 1. The virtualenv, rebuilt when requirements.txt changes.
req_hash="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$req_hash" ]]; then
    log "creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    # Make the SDK (plugins/python) importable from any script run by this venv, from the
    # source tree (switchyard_plugin/_stubs.py puts the stubs in _gen/ on the path itself).
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n' "$here" > "$site/switchyard_plugins.pth"
    echo "$req_hash" > "$venv/.requirements.sha256"
else
    log "virtualenv up to date"
fi

# In-tree leftovers of `pip install plugins/python` (pip builds a local directory in place):
# setuptools never deletes from build/lib, so a removed module could reach the next install.
rm -rf "$here/build" "$here/switchyard_plugin.egg-info"

# 2. The stubs, regenerated when a .proto file or the toolchain changes.
mapfile -t protos < <(cd "$proto_dir" && find switchyard plugin -name '*.proto' | LC_ALL=C sort)
proto_hash="$( (echo "$req_hash"; cd "$proto_dir" && sha256sum "${protos[@]}") | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$gen/.stamp" 2>/dev/null)" != "$proto_hash" ]]; then
    log "generating stubs in $gen"
    tmp="$(mktemp -d "$here/switchyard_plugin/.gen.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    "$venv/bin/python" -m grpc_tools.protoc -I "$proto_dir" \
        --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" "${protos[@]}"
    echo "$proto_hash" > "$tmp/.stamp"
    rm -rf "$gen"
    mv "$tmp" "$gen"
    trap - EXIT
else
    log "stubs up to date"
fi
