#!/usr/bin/env bash
# Builds and tests the non-Rust plugin tooling: the Python SDK and keyword-tagger
# (plugins/python), the Go SDK (sdk/go: its committed switchyard.v1 stubs must match
# proto/) and the Go plugin/host built on hashicorp/go-plugin (plugins/go).
#
#   plugins/polyglot-test.sh            # build both, run pytest (source tree, then the installed
#                                       # switchyard-plugin wheel) and go test
#
# Needs python3 (>= 3.9) and go (>= 1.26) on PATH, and network access to PyPI and the
# Go module proxy the first time. Exits non-zero if a build or any test fails.
# Both suites run with SWITCHYARD_REQUIRE_ALL=1: a test that needs another part of the
# project (the hub binary target/debug/switchyard, plugins/go/bin/host-go, the Python
# venv) fails instead of skipping when it is missing, so build the Rust binaries first
# (`cargo build --workspace --bins`, as scripts/test does). The Go end-to-end tests also
# run host-go against target/debug/testkit when it exists.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
status=0

section() { printf '\n=== %s ===\n' "$*"; }

section "build: plugins/python"
if ! "$here/python/build.sh"; then
    echo "polyglot-test: plugins/python/build.sh failed" >&2
    exit 1
fi
section "check: sdk/go stubs match proto/"
if ! "$here/../sdk/go/generate.sh" --check; then
    echo "polyglot-test: sdk/go/switchyardv1 is stale: run sdk/go/generate.sh and commit it" >&2
    status=1
fi

section "build: plugins/go"
if ! "$here/go/build.sh"; then
    echo "polyglot-test: plugins/go/build.sh failed" >&2
    exit 1
fi

section "pytest: plugins/python"
(cd "$here/python" && SWITCHYARD_REQUIRE_ALL=1 .venv/bin/python -m pytest -p no:cacheprovider) || status=1

section "pytest: the switchyard-plugin wheel, installed in a fresh virtualenv"
"$here/python/test-wheel.sh" || status=1

section "go test: sdk/go"
(cd "$here/../sdk/go" && go vet ./... && go test -count=1 ./...) || status=1

section "go test: plugins/go"
# -count=1: the end-to-end tests run external binaries, so cached results would be stale.
(cd "$here/go" && SWITCHYARD_REQUIRE_ALL=1 go test -count=1 ./...) || status=1

section "summary"
if [[ $status -eq 0 ]]; then
    echo "polyglot-test: all Python and Go plugin tests passed"
else
    echo "polyglot-test: FAILED (see above)" >&2
fi
exit $status
