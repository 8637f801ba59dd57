#!/usr/bin/env bash
# The cost of logging at the gateway: one node (registry,gateway,auth,echo, release build),
# `wrk -t2 -c50 -d8s` on `GET /api/v1/echo?text=hi` with an admin token, once per log level:
# info; info without the access line; warn (no info spans either). Needs wrk and curl.
#   ops/bench/log_cost.sh            (EMPORIUM_BIN: the binary; default the release build)
set -euo pipefail
BIN=${EMPORIUM_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/emporium/target}/release/emporium}
cd "$(dirname "$0")/../.."
for level in "info" "info,emporium::access=warn" "warn"; do
  dir=$(mktemp -d /tmp/attr.XXXXXX); port=$(python3 ops/bench/benchkit.py free-port); http=$(python3 ops/bench/benchkit.py free-port)
  EMPORIUM_CLUSTER_SECRET=attr-secret-0123456789abcdef EMPORIUM_ADMIN_PASSWORD=attr-admin-password-123 EMPORIUM__LOG__LEVEL="$level" \
    $BIN --role registry,gateway,auth,echo --listen 127.0.0.1:$port --http 127.0.0.1:$http --data-dir $dir --config-dir config > $dir/log 2>&1 &
  pid=$!
  for i in $(seq 100); do curl -sf 127.0.0.1:$port/health/ready >/dev/null && break; sleep 0.1; done
  token=$(curl -s -X POST 127.0.0.1:$http/api/v1/auth/login -H 'content-type: application/json' -d '{"email":"admin@emporium.local","password":"attr-admin-password-123"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
  wrk -t2 -c50 -d3s -H "Authorization: Bearer $token" "http://127.0.0.1:$http/api/v1/echo?text=hi" >/dev/null
  echo "$level: $(wrk -t2 -c50 -d8s -H "Authorization: Bearer $token" "http://127.0.0.1:$http/api/v1/echo?text=hi" | grep Requests/sec)"
  kill $pid; wait $pid 2>/dev/null || true; rm -rf $dir
done
