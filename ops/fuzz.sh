#!/usr/bin/env bash
# Fuzzes the public API with schemathesis against a fresh all-in-one node (issue 11, item 9).
#
#   ops/fuzz.sh                       # EMPORIUM_BIN or $CARGO_TARGET_DIR/debug/emporium
#
# 1. Installs schemathesis and openapi-spec-validator (PyPI, pinned) into a cached venv
#    ($EMPORIUM_CACHE/fuzz-venv; idempotent, one install at a time).
# 2. Starts `emporium --role all,echo` (FUZZ_ROLES; `echo` is the test service of the debug
#    build CI makes, whose routes the gateway mounts; a release binary takes FUZZ_ROLES=all) on
#    free loopback ports with a temporary data dir (embedded stores, in-process bus) and waits
#    until it is ready.
# 3. Validates GET /openapi.json with openapi-spec-validator.
# 4. Runs `st run --checks all` twice, as the bootstrap admin and as a customer, with
#    FUZZ_EXAMPLES examples per operation (default 100), each run capped at FUZZ_MINUTES
#    (default 6). Fails on any failed check (a 5xx, a response that does not match the
#    document, an undocumented status, a schema-valid request refused, a non-JSON error ...)
#    and when the two runs together sent fewer than FUZZ_MIN_REQUESTS (default 5000) requests.
#
# ops/test.sh runs it after the test suite (about 3 minutes, 7,800 test cases). Expected
# refusals of schema-valid data that only the catalog can explain are in ops/schemathesis.toml.
# The node's log and the reports are kept in the work dir on failure.
set -euo pipefail

cd "$(dirname "$0")/.."
CACHE="${EMPORIUM_CACHE:-$HOME/.cache/emporium}"
VENV="${EMPORIUM_FUZZ_VENV:-$CACHE/fuzz-venv}"
REQS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
BIN="${EMPORIUM_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/emporium/target}/debug/emporium}"
EXAMPLES="${FUZZ_EXAMPLES:-100}"
MINUTES="${FUZZ_MINUTES:-6}"
MIN_REQUESTS="${FUZZ_MIN_REQUESTS:-5000}"
CONFIG="$PWD/ops/schemathesis.toml"

say() { printf 'ops/fuzz.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$BIN" ] || die "no emporium binary at $BIN (cargo build, or set EMPORIUM_BIN)"


free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

json_field() { # json_field FIELD: reads JSON on stdin
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

ops/lib/pip_venv.sh "$(basename "$0")" "$VENV" st "${REQS[@]}" || exit 1

WORK="$(mktemp -d "${TMPDIR:-/tmp}/emporium-fuzz.XXXXXX")"
NODE_PID=""
cleanup() {
    local status=$?
    if [ -n "$NODE_PID" ]; then kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; fi
    if [ "$status" -eq 0 ]; then rm -rf "$WORK"; else say "kept $WORK (node.log, reports)"; fi
}
trap cleanup EXIT

HTTP_PORT="$(free_port)"
NODE_PORT="$(free_port)"
ADMIN_PASSWORD="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
BASE="http://127.0.0.1:$HTTP_PORT"
EMPORIUM_ADMIN_PASSWORD="$ADMIN_PASSWORD" EMPORIUM__LOG__LEVEL=warn "$BIN" --role "${FUZZ_ROLES:-all,echo}" \
    --http "127.0.0.1:$HTTP_PORT" --listen "127.0.0.1:$NODE_PORT" --data-dir "$WORK/data" \
    >"$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$NODE_PORT/health/ready" >/dev/null 2>&1; then break; fi
    kill -0 "$NODE_PID" 2>/dev/null || die "the node exited at start (see $WORK/node.log)"
    sleep 0.25
done
curl -fsS "http://127.0.0.1:$NODE_PORT/health/ready" >/dev/null || die "the node did not become ready in 30 s"

curl -fsS "$BASE/openapi.json" -o "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json" || die "/openapi.json is not a valid OpenAPI document"

login() { # login BODY
    curl -fsS -X POST "$BASE/api/v1/auth/login" -H 'content-type: application/json' -d "$1" | json_field accessToken
}
ADMIN_TOKEN="$(login "{\"username\": \"admin\", \"password\": \"$ADMIN_PASSWORD\"}")"
curl -fsS -X POST "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"username": "fuzzer", "email": "fuzzer@example.com", "fullName": "Fuzz Er", "password": "correct horse battery"}' >/dev/null
CUSTOMER_TOKEN="$(login '{"username": "fuzzer", "password": "correct horse battery"}')"

total=0
for who in admin customer; do
    token="$ADMIN_TOKEN"
    [ "$who" = customer ] && token="$CUSTOMER_TOKEN"
    say "schemathesis as the $who: --checks all, $EXAMPLES examples per operation, at most $MINUTES min"
    set +e
    # From the work dir: schemathesis keeps its example database in ./.schemathesis.
    (cd "$WORK" && timeout --signal=INT "${MINUTES}m" "$VENV/bin/st" --config-file "$CONFIG" run "$BASE/openapi.json" \
        --checks all --max-examples "$EXAMPLES" --seed 20261205 --workers 1 \
        --header "Authorization: Bearer $token" --no-color >"$WORK/$who.txt" 2>&1)
    status=$?
    set -e
    sed -n '/SUMMARY/,$p' "$WORK/$who.txt" >&2
    [ "$status" -eq 124 ] && die "schemathesis as the $who ran past $MINUTES minutes (FUZZ_MINUTES)"
    [ "$status" -eq 0 ] || { sed -n '/FAILURES/,/SUMMARY/p' "$WORK/$who.txt" | head -150 >&2; die "schemathesis as the $who found failures (full report: $WORK/$who.txt)"; }
    sent="$(sed -n 's/^ *\([0-9][0-9]*\) generated.*/\1/p' "$WORK/$who.txt" | tail -1)"
    [ -n "$sent" ] || die "could not read the number of test cases from $WORK/$who.txt"
    total=$((total + sent))
done
kill -0 "$NODE_PID" 2>/dev/null || die "the node died during the fuzzing (see $WORK/node.log)"
[ "$total" -ge "$MIN_REQUESTS" ] || die "only $total requests sent; at least $MIN_REQUESTS wanted (raise FUZZ_EXAMPLES)"
say "clean: $total test cases, no failure"
