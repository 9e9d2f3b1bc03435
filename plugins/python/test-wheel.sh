#!/usr/bin/env bash
# Builds the switchyard-plugin wheel from a clean copy of the package, installs it
# into a fresh virtualenv, and runs the HTTP toolkit, health and keyword-tagger
# tests against the installed package (not the source tree: conftest.py checks
# that switchyard_plugin comes from site-packages). Needs build.sh first (the
# stubs in switchyard_plugin/_gen and setuptools in .venv). Dependencies come
# from PyPI, constrained to the versions in requirements.txt (pip's cache makes
# a second run quick).
#
# Usage: plugins/python/test-wheel.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_python="$here/.venv/bin/python"
log() { printf 'test-wheel: %s\n' "$*" >&2; }

if [[ ! -x "$build_python" || ! -d "$here/switchyard_plugin/_gen" ]]; then
    log "error: run $here/build.sh first (the venv and the stubs are missing)"
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sy-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A clean copy, so no stale build/ or __pycache__ of the checkout ends up in the wheel.
mkdir "$work/src"
cp "$here/pyproject.toml" "$here/README.md" "$work/src/"
cp -r "$here/switchyard_plugin" "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$build_python" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$work/dist" "$work/src"
wheel=("$work"/dist/switchyard_plugin-*.whl)
log "built ${wheel[0]##*/}"

"$build_python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$here/requirements.txt" "${wheel[0]}" pytest
log "installed it into a fresh virtualenv"

cat > "$work/pytest.ini" <<INI
[pytest]
addopts = -ra -p no:cacheprovider
pythonpath = $here/keyword-tagger
INI
cd "$work"
SWITCHYARD_TEST_INSTALLED_WHEEL=1 "$work/venv/bin/python" -m pytest -q -c "$work/pytest.ini" --rootdir "$work" \
    "$here/tests/test_keyword_tagger.py" "$here/tests/test_health.py" "$here"/tests/test_http_*.py
