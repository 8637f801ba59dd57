#!/usr/bin/env bash
# Stops the server whose pid a start script recorded in PIDFILE, shared by ops/mongodb/stop.sh
# and ops/smtp/stop.sh. The pid is signalled only while /proc/<pid>/cmdline still matches
# PATTERN (a grep basic regular expression): a pid can be reused after the server exited.
# Idempotent: nothing recorded, or already gone, is not an error. SIGTERM, waits up to 10 s, then
# SIGKILL; then removes PIDFILE and every FILE given (the recorded port, ...).
#
# Usage:  ops/lib/stop_pidfile.sh [--quiet] NAME PATTERN PIDFILE [FILE...]
#   NAME    how the messages on stderr start (the calling script, e.g. ops/smtp/stop.sh)
#   --quiet no messages
set -euo pipefail

QUIET=""
if [ "${1:-}" = "--quiet" ]; then QUIET=1; shift; fi
if [ $# -lt 3 ]; then
    echo "usage: ops/lib/stop_pidfile.sh [--quiet] NAME PATTERN PIDFILE [FILE...]" >&2
    exit 2
fi
NAME=$1 PATTERN=$2 pidfile=$3
shift 3

say() { [ -n "$QUIET" ] || printf '%s: %s\n' "$NAME" "$*" >&2; }

if [ ! -s "$pidfile" ]; then say "no server recorded in ${pidfile%/*}"; exit 0; fi
pid="$(tr -dc 0-9 <"$pidfile")"
# Only signal the process if it is still our server (a pid can be reused after it exited).
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null \
    || ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$PATTERN"; then
    say "recorded server ${pid:-?} is not running"
    rm -f "$pidfile" "$@"
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
rm -f "$pidfile" "$@"
say "stopped server $pid"
