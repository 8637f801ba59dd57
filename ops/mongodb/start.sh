#!/usr/bin/env bash
# Starts the MongoDB-compatible test server (mongoeco 4.11.0 wire server, memory engine, patched
# for the Rust driver by server.py) in the background on a free loopback port, waits until it
# accepts connections, and prints exactly one line on stdout:
#
#   EMPORIUM_TEST_MONGODB_URL=mongodb://127.0.0.1:PORT
#
# Everything else goes to stderr. Stop it with ops/mongodb/stop.sh (same state dir).
# Installs the venv first if needed (ops/mongodb/install.sh; fails if Python >= 3.13 is missing).
#
# Usage:  ops/mongodb/start.sh [--watch-pid PID] [-- SERVER.PY ARGS...]
#   --watch-pid PID   the server also exits by itself once PID is gone (pass the test script's $$,
#                     so an interrupted run leaves no server behind)
#   -- ARGS           passed on to server.py (e.g. -- --no-fixes, -- --driver-fixes-only)
# Environment:
#   EMPORIUM_CACHE                 cache root (default $HOME/.cache/emporium)
#   EMPORIUM_MONGODB_STATE         state dir for pid, port and log (default $EMPORIUM_CACHE/mongodb-server)
#   EMPORIUM_MONGODB_PORT          port to listen on (default 0: a free one)
#   EMPORIUM_MONGODB_START_TIMEOUT seconds to wait for it (default 30)
# A server already recorded in the state dir is stopped first: each start is a fresh, empty store.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
STATE="${EMPORIUM_MONGODB_STATE:-$CACHE/mongodb-server}"
PORT_WANTED="${EMPORIUM_MONGODB_PORT:-0}"
TIMEOUT="${EMPORIUM_MONGODB_START_TIMEOUT:-30}"
WATCH_PID=""
EXTRA=()

say() { printf 'ops/mongodb/start.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --watch-pid) [ $# -ge 2 ] || die "--watch-pid needs a pid"; WATCH_PID="$2"; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,22p' "$0" >&2; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done

PY="$("$HERE/install.sh" | tail -n 1)"
[ -x "$PY" ] || die "install.sh did not yield a python ($PY)"

mkdir -p "$STATE"
EMPORIUM_MONGODB_STATE="$STATE" "$HERE/stop.sh" --quiet
rm -f "$STATE/port"

started=$(date +%s%N)
args=(--port "$PORT_WANTED" --port-file "$STATE/port")
[ -n "$WATCH_PID" ] && args+=(--watch-pid "$WATCH_PID")
args+=("${EXTRA[@]}")
# setsid: its own session, so a Ctrl-C meant for a foreground job does not reach it mid-run;
# all three standard streams are detached so a caller's $(...) does not wait for the server.
setsid "$PY" "$HERE/server.py" "${args[@]}" </dev/null >"$STATE/server.log" 2>&1 &
pid=$!
printf '%s\n' "$pid" >"$STATE/pid"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port=""
for _ in $(seq 1 $((TIMEOUT * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$STATE/pid"
        sed 's/^/  | /' "$STATE/server.log" >&2 || true
        die "the server exited before it was ready (log above, $STATE/server.log)"
    fi
    if [ -z "$port" ] && [ -s "$STATE/port" ]; then port="$(tr -dc 0-9 <"$STATE/port")"; fi
    if [ -n "$port" ] && port_open "$port" && grep -q '^mongodb-compatible server listening on ' "$STATE/server.log"; then
        ms=$(( ($(date +%s%N) - started) / 1000000 ))
        say "mongoeco wire server pid $pid ready on 127.0.0.1:$port in ${ms} ms (log: $STATE/server.log)"
        printf 'EMPORIUM_TEST_MONGODB_URL=mongodb://127.0.0.1:%s\n' "$port"
        exit 0
    fi
    sleep 0.1
done
kill "$pid" 2>/dev/null || true
rm -f "$STATE/pid"
sed 's/^/  | /' "$STATE/server.log" >&2 || true
die "the server did not accept connections within ${TIMEOUT}s (log above)"
