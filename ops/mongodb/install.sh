#!/usr/bin/env bash
# Installs the MongoDB-compatible test server (PyPI mongoeco, its wire server) into a venv.
#
#   ops/mongodb/install.sh            # prints the venv's python on the last line of stdout
#
# Idempotent: a venv that already holds exactly mongoeco[wire]==$MONGOECO_VERSION (recorded in a
# stamp file after a successful install and re-checked by importing it) is left alone. Otherwise
# the venv is created anew. The only network access is pip talking to PyPI.
#
# Environment:
#   EMPORIUM_CACHE        cache root (default $HOME/.cache/emporium)
#   EMPORIUM_MONGOECO_VENV  venv path (default $EMPORIUM_CACHE/mongoeco-venv)
#   EMPORIUM_PYTHON       a Python >= 3.13 to use instead of searching for one
#
# mongoeco needs Python >= 3.13. Debian's python3 is 3.11; the machine image's pyenv has 3.13.0.
# Without one this script fails (exit 1) with a message saying so; it never skips silently.
set -euo pipefail

MONGOECO_VERSION=4.11.0   # pinned: ops/mongodb/server.py patches this version's internals
REQ="mongoeco[wire]==$MONGOECO_VERSION"
CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
VENV="${EMPORIUM_MONGOECO_VENV:-$CACHE/mongoeco-venv}"
STAMP="$VENV/.emporium-mongoeco"

say() { printf 'ops/mongodb/install.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

is_py313() { # is_py313 PATH -> 0 when PATH runs and is CPython >= 3.13 with venv support
    [ -n "$1" ] && "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 13) else 1)' >/dev/null 2>&1
}

find_python() {
    local c
    if [ -n "${EMPORIUM_PYTHON:-}" ]; then
        is_py313 "$EMPORIUM_PYTHON" || die "EMPORIUM_PYTHON=$EMPORIUM_PYTHON is not a working Python >= 3.13 with venv/ensurepip"
        printf '%s\n' "$EMPORIUM_PYTHON"; return
    fi
    # Plain names on PATH first (a pyenv shim for a version that is installed but not selected
    # fails to run, so each candidate is run, not just looked up).
    for c in python3.15 python3.14 python3.13; do
        if command -v "$c" >/dev/null 2>&1 && is_py313 "$(command -v "$c")"; then command -v "$c"; return; fi
    done
    # Then pyenv's installed versions, newest first, whether selected or not.
    local root
    root="$( (command -v pyenv >/dev/null 2>&1 && pyenv root) || printf '%s' "${PYENV_ROOT:-$HOME/.pyenv}")"
    if [ -d "$root/versions" ]; then
        for c in $(ls -1 "$root/versions" 2>/dev/null | grep -E '^3\.(1[3-9]|[2-9][0-9])(\.[0-9]+)*$' | sort -t. -k1,1n -k2,2n -k3,3n -r); do
            if is_py313 "$root/versions/$c/bin/python3"; then printf '%s\n' "$root/versions/$c/bin/python3"; return; fi
        done
    fi
    if command -v python3 >/dev/null 2>&1 && is_py313 "$(command -v python3)"; then command -v python3; return; fi
    die "no Python >= 3.13 found (mongoeco $MONGOECO_VERSION needs it; Debian's python3 is $(python3 -V 2>&1 || echo missing)). Install one (e.g. 'pyenv install 3.13') or set EMPORIUM_PYTHON=/path/to/python3.13."
}

installed_ok() {
    [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQ" ] || return 1
    is_py313 "$VENV/bin/python" || return 1
    "$VENV/bin/python" - "$MONGOECO_VERSION" >/dev/null 2>&1 <<'PY'
import sys, importlib.metadata as md
assert md.version("mongoeco") == sys.argv[1]
import mongoeco.wire.proxy  # the wire extra's imports resolve
PY
}

if installed_ok; then
    say "up to date: $REQ in $VENV"
    printf '%s\n' "$VENV/bin/python"
    exit 0
fi

PY="$(find_python)"
say "using $PY ($("$PY" -V 2>&1))"
if [ -e "$VENV" ]; then
    say "removing stale venv $VENV"
    rm -rf "$VENV"
fi
mkdir -p "$(dirname "$VENV")"
# Built in place (venv scripts embed their path); the stamp is written only after pip succeeded,
# so an interrupted install is redone from scratch next time.
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "$REQ" \
    || { rm -rf "$VENV"; die "pip could not install $REQ (is PyPI reachable?)"; }
printf '%s\n' "$REQ" >"$STAMP"
installed_ok || { rm -rf "$VENV"; die "installed $REQ but it does not import (see: $VENV/bin/python -c 'import mongoeco.wire.proxy')"; }
say "installed $REQ in $VENV"
printf '%s\n' "$VENV/bin/python"
