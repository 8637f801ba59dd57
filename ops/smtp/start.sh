#!/usr/bin/env bash
# Starts the test SMTP server (ops/smtp/server.py, aiosmtpd) in the background on a free loopback
# port, waits until it accepts connections, and prints exactly two lines on stdout:
#
#   EMPORIUM_SMTP_URL=smtp://127.0.0.1:PORT
#   EMPORIUM_TEST_SMTP_MAILDIR=DIR            (one msg-NNNNNN.json per accepted message)
#
# Everything else goes to stderr. Stop it with ops/smtp/stop.sh (same state dir). Installs the
# venv first if needed (ops/smtp/install.sh). The Rust tests do not use this script: they start
# server.py themselves, one server per test; it is for multi-node runs and manual checks.
#
# Usage:  ops/smtp/start.sh [--watch-pid PID] [--temp-fail N]
#   --watch-pid PID   the server also exits by itself once PID is gone
#   --temp-fail N     answer the first N messages with 451 (to see retries)
# Environment:
#   EMPORIUM_CACHE             cache root (default $HOME/.cache/emporium)
#   EMPORIUM_SMTP_STATE        state dir for pid, port, log and maildir (default $EMPORIUM_CACHE/smtp-server)
#   EMPORIUM_SMTP_PORT         port to listen on (default 0: a free one)
#   EMPORIUM_SMTP_START_TIMEOUT seconds to wait for it (default 30)
# A server already recorded in the state dir is stopped first, and its maildir emptied.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
STATE="${EMPORIUM_SMTP_STATE:-$CACHE/smtp-server}"
PORT_WANTED="${EMPORIUM_SMTP_PORT:-0}"
TIMEOUT="${EMPORIUM_SMTP_START_TIMEOUT:-30}"
EXTRA=()

say() { printf 'ops/smtp/start.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --watch-pid) [ $# -ge 2 ] || die "--watch-pid needs a pid"; EXTRA+=(--watch-pid "$2"); shift 2 ;;
        --temp-fail) [ $# -ge 2 ] || die "--temp-fail needs a count"; EXTRA+=(--temp-fail "$2"); shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" >&2; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done

PY="$("$HERE/install.sh" | tail -n 1)"
[ -x "$PY" ] || die "install.sh did not yield a python ($PY)"

mkdir -p "$STATE"
EMPORIUM_SMTP_STATE="$STATE" "$HERE/stop.sh" --quiet
rm -rf "$STATE/port" "$STATE/maildir"

# setsid: its own session, so a Ctrl-C meant for a foreground job does not reach it; the three
# standard streams are detached so a caller's $(...) does not wait for the server.
setsid "$PY" "$HERE/server.py" --port "$PORT_WANTED" --port-file "$STATE/port" --maildir "$STATE/maildir" \
    "${EXTRA[@]}" </dev/null >"$STATE/server.log" 2>&1 &
pid=$!
printf '%s\n' "$pid" >"$STATE/pid"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for _ in $(seq 1 $((TIMEOUT * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$STATE/pid"
        sed 's/^/  | /' "$STATE/server.log" >&2 || true
        die "the server exited before it was ready (log above, $STATE/server.log)"
    fi
    if [ -s "$STATE/port" ]; then
        port="$(tr -dc 0-9 <"$STATE/port")"
        if [ -n "$port" ] && port_open "$port"; then
            say "aiosmtpd pid $pid ready on 127.0.0.1:$port (log: $STATE/server.log)"
            printf 'EMPORIUM_SMTP_URL=smtp://127.0.0.1:%s\n' "$port"
            printf 'EMPORIUM_TEST_SMTP_MAILDIR=%s\n' "$STATE/maildir"
            exit 0
        fi
    fi
    sleep 0.1
done
kill "$pid" 2>/dev/null || true
rm -f "$STATE/pid"
sed 's/^/  | /' "$STATE/server.log" >&2 || true
die "the server did not accept connections within ${TIMEOUT}s (log above)"
