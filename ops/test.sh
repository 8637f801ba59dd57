#!/usr/bin/env bash
# The one test command: makes sure the services the tests need are up, then runs the format
# check, clippy with -D warnings and the whole test suite against the real services.
# README.md and .ci/run call this and nothing else.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/emporium/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

say() { printf '== %s\n' "$*"; }
die() { printf 'ops/test.sh: %s\n' "$*" >&2; exit 1; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2; shift 2
    for _ in $(seq 1 $((seconds * 2))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    die "$what did not come up within ${seconds}s"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_mariadb() {
    if mariadb-admin --protocol=tcp -h127.0.0.1 -uroot ping >/dev/null 2>&1; then return 0; fi
    [ -x /usr/sbin/mariadbd ] || die "MariaDB is not running on 127.0.0.1:3306 and is not installed (apt-get install mariadb-server)"
    say "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for 60 "MariaDB" mariadb-admin --protocol=tcp -h127.0.0.1 -uroot ping
}

ensure_rabbitmq() {
    if port_open 5672; then return 0; fi
    command -v rabbitmq-server >/dev/null || die "RabbitMQ is not running on 127.0.0.1:5672 and is not installed (apt-get install rabbitmq-server)"
    say "starting RabbitMQ"
    rabbitmq-server -detached
    wait_for 90 "RabbitMQ" port_open 5672
}

ensure_mongodb_compatible_server() {
    # The product catalog's MongoDB suite runs against a real MongoDB when
    # EMPORIUM_TEST_MONGODB_URL is set, else against the mongoeco wire server (../shared/MONGODB.md).
    if [ -n "${EMPORIUM_TEST_MONGODB_URL:-}" ]; then return 0; fi
    local line
    line="$(ops/mongodb/start.sh --watch-pid $$)" || die "could not start the MongoDB-compatible test server (ops/mongodb/start.sh)"
    export "$line"
    trap 'ops/mongodb/stop.sh >/dev/null 2>&1 || true' EXIT
}

ensure_smtp_test_server() {
    # The notification tests send mail to a real SMTP server (aiosmtpd from PyPI, in a venv).
    ops/smtp/install.sh >/dev/null || die "could not install the test SMTP server (ops/smtp/install.sh)"
}

ensure_debian_package() { # ensure_debian_package COMMAND PACKAGE: apt-get install when missing
    ops/lib/debian_package.sh "ops/test.sh" "$1" "$2" || die "could not provide $1"
}

ensure_mariadb
ensure_rabbitmq
ensure_smtp_test_server
command -v rabbitmqctl >/dev/null || die "rabbitmqctl is needed (the broker restart test stops and starts the app)"
ensure_mongodb_compatible_server
export EMPORIUM_TEST_MYSQL_URL="${EMPORIUM_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}"
export EMPORIUM_TEST_AMQP_URL="${EMPORIUM_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
say "services: MariaDB, RabbitMQ, a MongoDB-compatible server ($EMPORIUM_TEST_MONGODB_URL) and the test SMTP server are ready"

say "docker-compose.yml (docker-compose config, and against the documentation)"
ensure_debian_package docker-compose docker-compose
# Debian's python3, which has PyYAML since docker-compose depends on it.
/usr/bin/python3 ops/compose_check.py

say "Prometheus configuration and alert rules (promtool; nodes/tests/prometheus.rs runs the server)"
ensure_debian_package prometheus prometheus
promtool check config ops/prometheus/prometheus.yml
promtool test rules ops/prometheus/rules_test.yml

say "Kubernetes manifests (ops/k8s: schemas, file list, references)"
ops/check_k8s.sh

say "Grafana provisioning and dashboards (every query names a metric the nodes export)"
/usr/bin/python3 ops/check_grafana.py

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

say "Dockerfile dependency stage (ops/docker/check.sh)"
ops/docker/check.sh

say "cargo test"
cargo test --workspace --all-features --locked -- --test-threads 4

say "fuzzing the public API (ops/fuzz.sh: schemathesis, every check, as the admin and as a customer)"
EMPORIUM_BIN="$CARGO_TARGET_DIR/debug/emporium" ops/fuzz.sh

say "chaos, short mode (ops/chaos.py: every role killed once, the broker and the registry down)"
EMPORIUM_BIN="$CARGO_TARGET_DIR/debug/emporium" python3 ops/chaos.py

say "the supervisor dashboard in a real browser (ops/browser/run.sh: Chromium, Selenium, a whole cluster)"
EMPORIUM_BIN="$CARGO_TARGET_DIR/debug/emporium" ops/browser/run.sh
