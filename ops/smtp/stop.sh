#!/usr/bin/env bash
# Stops the test SMTP server that ops/smtp/start.sh started (pid recorded in its state dir).
# Idempotent: nothing recorded, or already gone, is not an error. SIGTERM (the server closes its
# listener and exits 0), up to 10 s, then SIGKILL. The maildir is left for reading.
#
# Usage:  ops/smtp/stop.sh [--quiet]
# Environment: EMPORIUM_CACHE, EMPORIUM_SMTP_STATE (as for start.sh)
set -euo pipefail

CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
STATE="${EMPORIUM_SMTP_STATE:-$CACHE/smtp-server}"
QUIET=""
[ "${1:-}" = "--quiet" ] && QUIET=1

say() { [ -n "$QUIET" ] || printf 'ops/smtp/stop.sh: %s\n' "$*" >&2; }

pidfile="$STATE/pid"
if [ ! -s "$pidfile" ]; then say "no server recorded in $STATE"; exit 0; fi
pid="$(tr -dc 0-9 <"$pidfile")"
# Only signal the process if it is still our server (a pid can be reused after it exited).
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null \
    || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'smtp/server.py'; then
    say "recorded server ${pid:-?} is not running"
    rm -f "$pidfile" "$STATE/port"
    exit 0
fi
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    say "server $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$pidfile" "$STATE/port"
say "stopped server $pid"
