#!/usr/bin/env bash
# Stops the test SMTP server that ops/smtp/start.sh started (pid recorded in its state dir).
# Idempotent: nothing recorded, or already gone, is not an error. SIGTERM (the server closes its
# listener and exits 0), up to 10 s, then SIGKILL. The maildir is left for reading. The stopping
# itself is ops/lib/stop_pidfile.sh, shared with ops/mongodb/stop.sh.
#
# Usage:  ops/smtp/stop.sh [--quiet]
# Environment: EMPORIUM_CACHE, EMPORIUM_SMTP_STATE (as for start.sh)
set -euo pipefail

CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
STATE="${EMPORIUM_SMTP_STATE:-$CACHE/smtp-server}"
QUIET=""
[ "${1:-}" = "--quiet" ] && QUIET=--quiet

exec "$(dirname "$0")/../lib/stop_pidfile.sh" ${QUIET:+"$QUIET"} ops/smtp/stop.sh \
    'smtp/server.py' "$STATE/pid" "$STATE/port"
