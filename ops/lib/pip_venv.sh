#!/usr/bin/env bash
# Makes sure VENV is a venv of the machine's python3 holding exactly the pinned REQUIREMENTs
# (PyPI), shared by ops/fuzz.sh and ops/check_k8s.sh. Idempotent and safe to run concurrently
# (flock on VENV.lock): a venv whose stamp lists the same requirements and that has EXECUTABLE
# is kept; any other is built anew. The only network access is pip talking to PyPI.
#
# Usage:  ops/lib/pip_venv.sh NAME VENV EXECUTABLE REQUIREMENT...
#   NAME        how the messages on stderr start (the calling script)
#   EXECUTABLE  a program the requirements install into VENV/bin (proves the install finished)
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: ops/lib/pip_venv.sh NAME VENV EXECUTABLE REQUIREMENT..." >&2
    exit 2
fi
NAME=$1 VENV=$2 EXECUTABLE=$3
shift 3
STAMP="$VENV/.emporium-requirements"

say() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$(dirname "$VENV")"
exec 8>"$VENV.lock"
flock 8
if [ -x "$VENV/bin/$EXECUTABLE" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$*" ]; then
    exit 0
fi
say "installing $* into $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "$@" \
    || { rm -rf "$VENV"; die "pip could not install $* (is PyPI reachable?)"; }
printf '%s\n' "$*" >"$STAMP"
