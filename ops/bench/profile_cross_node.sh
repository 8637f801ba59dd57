#!/usr/bin/env bash
# Where a cross-node request's gateway CPU goes (issue 14, case b of ops/bench/gateway.py): a
# node `registry,gateway,auth` and a node `echo`, `wrk -t2 -c200` on `GET /api/v1/echo?text=hi`
# with an admin token, and `perf record -e cpu-clock -g` on the gateway node for 10 s of it.
# Prints the flat profile (self time by symbol) and the shares by area. Needs perf (Debian's
# linux-perf), wrk and curl; the release binary (EMPORIUM_BIN, default the release build).
#   ops/bench/profile_cross_node.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${EMPORIUM_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/emporium/target}/release/emporium}
OUT=${1:-$(mktemp -d /tmp/emporium-profile.XXXXXX)}
mkdir -p "$OUT"
SECRET=profile-secret-0123456789abcdef
free() { python3 ops/bench/benchkit.py free-port; }
reg=$(free); http=$(free)
export EMPORIUM_CLUSTER_SECRET=$SECRET EMPORIUM_ADMIN_PASSWORD=profile-admin-password-123
"$BIN" --role registry,gateway,auth --listen 127.0.0.1:$reg --http 127.0.0.1:$http --data-dir "$OUT/gw" \
    --config-dir config >"$OUT/gateway.log" 2>&1 &
gw=$!
"$BIN" --role echo --registry http://127.0.0.1:$reg --listen 127.0.0.1:0 --data-dir "$OUT/echo" >"$OUT/echo.log" 2>&1 &
echo_pid=$!
trap 'kill $gw $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do
    curl -sf "127.0.0.1:$reg/registry/v1/instances?service=echo" -H "Authorization: Cluster $SECRET" | grep -q '"UP"' && break
    sleep 0.1
done
token=$(curl -s -X POST "127.0.0.1:$http/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"admin@emporium.local","password":"profile-admin-password-123"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
url="http://127.0.0.1:$http/api/v1/echo?text=hi"
wrk -t2 -c200 -d3s -H "Authorization: Bearer $token" "$url" >/dev/null
wrk -t2 -c200 -d14s -H "Authorization: Bearer $token" "$url" >"$OUT/wrk.txt" &
wrk_pid=$!
sleep 2
perf record -e cpu-clock -F 1999 -g -p $gw -o "$OUT/perf.data" -- sleep 10 2>"$OUT/perf-record.txt"
wait $wrk_pid
grep -E "Requests/sec|Latency" "$OUT/wrk.txt"
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40 >"$OUT/flat.txt"
cat "$OUT/flat.txt"
echo "profile: $OUT/perf.data (perf report -i $OUT/perf.data)"
