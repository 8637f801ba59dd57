#!/usr/bin/env bash
# Product reads through the gateway (issue 5): the catalog list and one product, with wrk, on the
# embedded store and on the MongoDB-compatible test server (mongoeco, ops/mongodb), all on
# 127.0.0.1. Prints a table and replaces the section "## Product reads (issue 5)" of
# docs/BENCHMARKS.md. Free ports and the docs writer are ops/bench/benchkit.py's.
#
#   ops/bench/products.sh            # uses $CARGO_TARGET_DIR/release/emporium, builds it if missing
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/emporium/target}"
BIN="$TARGET/release/emporium"
[ -x "$BIN" ] || CARGO_TARGET_DIR="$TARGET" cargo build --release -p emporium --features test-services
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
    ops/mongodb/stop.sh >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
export EMPORIUM_CLUSTER_SECRET=bench-cluster-secret-0123456789
free_port() { python3 ops/bench/benchkit.py free-port; }

run_store() { # run_store LABEL [MONGODB_URL]
    local label=$1 mongo=${2:-} data="$WORK/$1" listen http
    mkdir -p "$data"
    listen=$(free_port); http=$(free_port)
    env ${mongo:+EMPORIUM_MONGODB_URL=$mongo} "$BIN" --data-dir "$data" seed >/dev/null
    env ${mongo:+EMPORIUM_MONGODB_URL=$mongo} "$BIN" --role registry,gateway,product --listen "127.0.0.1:$listen" \
        --http "127.0.0.1:$http" --data-dir "$data" --config-dir "$ROOT/config" >"$data/node.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do curl -sf "127.0.0.1:$listen/health/ready" >/dev/null && break; sleep 0.1; done
    local id
    id=$(curl -sf "127.0.0.1:$http/api/v1/products?size=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
    wrk -t2 -c50 -d3s "http://127.0.0.1:$http/api/v1/products?category=coffee&sort=price,asc" >/dev/null # warm-up
    for route in "/api/v1/products?category=coffee&sort=price,asc" "/api/v1/products/$id"; do
        local out rps p50 p99
        out=$(wrk -t2 -c50 -d10s --latency "http://127.0.0.1:$http$route")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(awk '$1=="50%" {print $2}' <<<"$out")
        p99=$(awk '$1=="99%" {print $2}' <<<"$out")
        local shown=$route
        [[ $route == /api/v1/products/$id ]] && shown="/api/v1/products/{id}"
        printf '| %s | `GET %s` | %s | %s | %s |\n' "$label" "$shown" "$rps" "$p50" "$p99" | tee -a "$WORK/rows"
    done
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}

load=$(uptime)
: >"$WORK/rows"
run_store "embedded (SQLite)"
line=$(ops/mongodb/start.sh --watch-pid $$)
run_store "MongoDB-compatible (mongoeco 4.11.0, memory engine)" "${line#*=}/bench_products"

commit=$(git rev-parse --short HEAD)
section=$(cat <<MD
## Product reads (issue 5)

Measured $(date -u '+%Y-%m-%d %H:%M UTC') on commit $commit with \`ops/bench/products.sh\` (release binary
\`$BIN\`). One node \`--role registry,gateway,product\`, the demo catalog (\`emporium seed\`, 20
products), wrk with 2 threads and 50 connections for 10 s after a 3 s warm-up, on the same 2-core
machine as the node. Load before the run: \`$load\`. Reads are public (no token). The MongoDB
figures are for mongoeco's wire server (Python, in memory) through its compatibility wrapper,
not a real MongoDB: they measure Emporium's path more than the store.

| store | route | req/s | p50 | p99 |
|---|---|---|---|---|
$(cat "$WORK/rows")
MD
)
python3 ops/bench/benchkit.py write-docs "## Product reads (issue 5)" "$section"
echo "updated docs/BENCHMARKS.md"
