#!/usr/bin/env bash
# Installs the test SMTP server (PyPI aiosmtpd) into a venv built with the machine's python3.
#
#   ops/smtp/install.sh            # prints the venv's python on the last line of stdout
#
# Idempotent: a venv that already holds exactly aiosmtpd==$AIOSMTPD_VERSION (recorded in a stamp
# file after a successful install and re-checked by importing it) is left alone; otherwise the
# venv is created anew. The only network access is pip talking to PyPI. ops/test.sh runs it
# before the tests; the notification tests run it too (fast when up to date) and then start
# ops/smtp/server.py from that venv on a free loopback port.
#
# Environment:
#   EMPORIUM_CACHE       cache root (default $HOME/.cache/emporium)
#   EMPORIUM_SMTP_VENV   venv path (default $EMPORIUM_CACHE/smtp-venv)
#   EMPORIUM_PYTHON3     the Python (>= 3.8, with venv/ensurepip) to build it with (default python3)
set -euo pipefail

AIOSMTPD_VERSION=1.4.6
REQ="aiosmtpd==$AIOSMTPD_VERSION"
CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
VENV="${EMPORIUM_SMTP_VENV:-$CACHE/smtp-venv}"
STAMP="$VENV/.emporium-smtp"
PYTHON="${EMPORIUM_PYTHON3:-python3}"

say() { printf 'ops/smtp/install.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

installed_ok() {
    [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQ" ] || return 1
    "$VENV/bin/python" - "$AIOSMTPD_VERSION" >/dev/null 2>&1 <<'PY'
import sys, importlib.metadata as md
assert md.version("aiosmtpd") == sys.argv[1]
import aiosmtpd.smtp  # the server class imports
PY
}

mkdir -p "$(dirname "$VENV")"
# One install at a time (parallel test binaries, scripts): the others wait, then find it done.
exec 9>"$VENV.lock"
flock 9

if installed_ok; then
    say "up to date: $REQ in $VENV"
    printf '%s\n' "$VENV/bin/python"
    exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (apt-get install python3 python3-venv, or set EMPORIUM_PYTHON3)"
"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 8) else 1)' >/dev/null 2>&1 \
    || die "$PYTHON is not a Python >= 3.8 with venv/ensurepip (apt-get install python3-venv)"
say "using $(command -v "$PYTHON") ($("$PYTHON" -V 2>&1))"
if [ -e "$VENV" ]; then
    say "removing stale venv $VENV"
    rm -rf "$VENV"
fi
# The stamp is written only after pip succeeded, so an interrupted install is redone next time.
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "$REQ" \
    || { rm -rf "$VENV"; die "pip could not install $REQ (is PyPI reachable?)"; }
printf '%s\n' "$REQ" >"$STAMP"
installed_ok || { rm -rf "$VENV"; die "installed $REQ but it does not import (see: $VENV/bin/python -c 'import aiosmtpd.smtp')"; }
say "installed $REQ in $VENV"
printf '%s\n' "$VENV/bin/python"
