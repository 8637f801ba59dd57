#!/usr/bin/env bash
# Stops the test server that ops/mongodb/start.sh started (pid recorded in its state dir).
# Idempotent: nothing recorded, or already gone, is not an error. Sends SIGTERM (the server
# closes its connections and exits 0), waits up to 10 s, then SIGKILL. The stopping itself is
# ops/lib/stop_pidfile.sh, shared with ops/smtp/stop.sh.
#
# Usage:  ops/mongodb/stop.sh [--quiet]
# Environment: EMPORIUM_CACHE, EMPORIUM_MONGODB_STATE (as for start.sh)
set -euo pipefail

CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
STATE="${EMPORIUM_MONGODB_STATE:-$CACHE/mongodb-server}"
QUIET=""
[ "${1:-}" = "--quiet" ] && QUIET=--quiet

exec "$(dirname "$0")/../lib/stop_pidfile.sh" ${QUIET:+"$QUIET"} ops/mongodb/stop.sh \
    'ops/mongodb/server.py\|/server.py --port' "$STATE/pid" "$STATE/port"
