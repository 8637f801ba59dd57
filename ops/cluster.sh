#!/usr/bin/env bash
# A whole Emporium cluster on one machine, one process per role, on MariaDB and RabbitMQ: the
# README's "A cluster on one machine" recipe as a script.
#
# Usage:  ops/cluster.sh up [ROLE...]      create the database, start the roles one by one, each
#                                          once the previous one is ready; print the URLs
#         ops/cluster.sh down [ROLE...]    stop them: SIGTERM, up to 10 s, then SIGKILL
#         ops/cluster.sh status            pid and readiness of every role (exit 1 unless all ready)
#
# Without ROLE, every role in this order: registry auth product inventory order payment
# notification gateway (`down`: the reverse, the registry last). `up` is idempotent: a role
# whose process still runs is left alone, so `up` after a crash (or `up order` after
# `kill -9`) starts only what is missing. Every wait is bounded.
#
# What `up` does, by hand:
#   mariadb -h 127.0.0.1 -P 3306 -u root -e 'CREATE DATABASE IF NOT EXISTS `emporium`'
#   export EMPORIUM_CLUSTER_SECRET_FILE=cluster-state/cluster-secret   # 48 random hex digits
#   emporium --role registry --listen 127.0.0.1:8761 --node-id registry-1 \
#            --data-dir cluster-state/data/registry --config-dir config >>cluster-state/logs/registry.log 2>&1 &
#   curl -fsS http://127.0.0.1:8761/health/ready                         # until 200
#   emporium --role auth --listen 127.0.0.1:8762 --node-id auth-1 --registry http://127.0.0.1:8761 \
#            --data-dir cluster-state/data/auth >>cluster-state/logs/auth.log 2>&1 &
#   ... the same for product (8763), inventory (8764), order (8765), payment (8766),
#   notification (8767), then gateway (8768) with --http 0.0.0.0:8080.
#
# Environment (the values `up` used are recorded in the state dir, cluster.env, and reused by
# later commands for whatever is not set):
#   EMPORIUM_CLUSTER_DIR     state dir: cluster.env, cluster-secret, data/ROLE, logs/ROLE.log,
#                            run/ROLE.pid (default ./cluster-state)
#   EMPORIUM_MYSQL_URL       default mysql://root@127.0.0.1:3306/emporium (the database is created)
#   EMPORIUM_AMQP_URL        default amqp://guest:guest@127.0.0.1:5672/%2f
#   EMPORIUM_BUS_NAMESPACE   default emporium
#   EMPORIUM_CLUSTER_SECRET  (or EMPORIUM_CLUSTER_SECRET_FILE) default: generated once into
#                            the state dir's cluster-secret
#   EMPORIUM_ADMIN_PASSWORD  the bootstrap admin's password (first start of a database only);
#                            unset: the auth node prints a generated one, once, into its log
#   EMPORIUM_HTTP            the gateway's public listener, ADDRESS:PORT or PORT (default 0.0.0.0:8080)
#   EMPORIUM_REGISTRY_PORT   the registry's port (default 8761)
#   EMPORIUM_NODE_PORT_BASE  the first of the seven other nodes' ports (default registry port + 1)
#   EMPORIUM_CLUSTER_HOST    the address every node listens on (default 127.0.0.1)
#   EMPORIUM_CONFIG_DIR      the configuration repository (default the repository's config/)
#   EMPORIUM_BIN             the binary (default: `emporium` on PATH, else
#                            $CARGO_TARGET_DIR/release/emporium, else target/release/emporium,
#                            else built with `cargo build -p emporium --release`)
#   EMPORIUM_READY_TIMEOUT   seconds each node has to become ready (default 60)
# Any other variable the binary reads (EMPORIUM_MONGODB_URL, EMPORIUM_SMTP_URL, EMPORIUM__LOG__LEVEL,
# ...) is passed through to every node.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ROLES=(registry auth product inventory order payment notification gateway)
# Settings recorded in cluster.env by `up` (never the secrets, except inside the MySQL URL).
RECORDED=(EMPORIUM_MYSQL_URL EMPORIUM_AMQP_URL EMPORIUM_BUS_NAMESPACE EMPORIUM_HTTP EMPORIUM_REGISTRY_PORT
          EMPORIUM_NODE_PORT_BASE EMPORIUM_CLUSTER_HOST EMPORIUM_CONFIG_DIR EMPORIUM_BIN)

say() { printf 'ops/cluster.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n '2,13p' "$0" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# Settings

case "${1:-}" in -h | --help | help) sed -n '2,47p' "$0"; exit 0 ;; up | down | status) ;; *) usage ;; esac

STATE="${EMPORIUM_CLUSTER_DIR:-$PWD/cluster-state}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"

# Fills every RECORDED variable that is unset from cluster.env (what the last `up` used).
load_recorded_settings() {
    local file="$STATE/cluster.env" key value
    [ -f "$file" ] || return 0
    while IFS='=' read -r key value; do
        case " ${RECORDED[*]} " in *" $key "*) ;; *) continue ;; esac
        if [ -z "${!key:-}" ]; then printf -v "$key" '%s' "$value"; export "${key?}"; fi
    done <"$file"
}

record_settings() {
    local key
    (
        umask 077
        for key in "${RECORDED[@]}"; do printf '%s=%s\n' "$key" "${!key:-}"; done
        printf 'SECRET_SOURCE=%s\n' "$SECRET_SOURCE" # where the secret came from, never the secret
    ) >"$STATE/cluster.env.tmp"
    mv "$STATE/cluster.env.tmp" "$STATE/cluster.env"
}

load_recorded_settings
export EMPORIUM_MYSQL_URL="${EMPORIUM_MYSQL_URL:-mysql://root@127.0.0.1:3306/emporium}"
export EMPORIUM_AMQP_URL="${EMPORIUM_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export EMPORIUM_BUS_NAMESPACE="${EMPORIUM_BUS_NAMESPACE:-emporium}"
EMPORIUM_CLUSTER_HOST="${EMPORIUM_CLUSTER_HOST:-127.0.0.1}"
EMPORIUM_REGISTRY_PORT="${EMPORIUM_REGISTRY_PORT:-8761}"
EMPORIUM_NODE_PORT_BASE="${EMPORIUM_NODE_PORT_BASE:-$((EMPORIUM_REGISTRY_PORT + 1))}"
READY_TIMEOUT="${EMPORIUM_READY_TIMEOUT:-60}"
# The binary reads EMPORIUM_HTTP too (as ADDRESS:PORT, on every node), so a bare port is
# turned into an address before the nodes see it.
EMPORIUM_HTTP="${EMPORIUM_HTTP:-0.0.0.0:8080}"
case "$EMPORIUM_HTTP" in
    *:*) ;;
    *[!0-9]* | '') die "EMPORIUM_HTTP must be ADDRESS:PORT or PORT, not '$EMPORIUM_HTTP'" ;;
    *) EMPORIUM_HTTP="0.0.0.0:$EMPORIUM_HTTP" ;;
esac
export EMPORIUM_HTTP
if [ -z "${EMPORIUM_CONFIG_DIR:-}" ] && [ -d "$REPO/config" ]; then EMPORIUM_CONFIG_DIR="$REPO/config"; fi
for number in "$EMPORIUM_REGISTRY_PORT" "$EMPORIUM_NODE_PORT_BASE" "$READY_TIMEOUT"; do
    case "$number" in *[!0-9]* | '') die "ports and timeouts are numbers, not '$number'" ;; esac
done

REGISTRY_URL="http://$EMPORIUM_CLUSTER_HOST:$EMPORIUM_REGISTRY_PORT"
HTTP_PORT="${EMPORIUM_HTTP##*:}"
HTTP_HOST="${EMPORIUM_HTTP%:*}"
case "$HTTP_HOST" in 0.0.0.0 | '' | '[::]') HTTP_HOST=127.0.0.1 ;; esac
GATEWAY_URL="http://$HTTP_HOST:$HTTP_PORT"

port_of() { # port_of ROLE
    local index
    [ "$1" = registry ] && { echo "$EMPORIUM_REGISTRY_PORT"; return; }
    for index in "${!ROLES[@]}"; do
        [ "${ROLES[$index]}" = "$1" ] && { echo $((EMPORIUM_NODE_PORT_BASE + index - 1)); return; }
    done
    die "unknown role '$1' (roles: ${ROLES[*]})"
}

pid_file() { echo "$STATE/run/$1.pid"; }
log_file() { echo "$STATE/logs/$1.log"; }
data_dir() { echo "$STATE/data/$1"; }

# What /proc/<pid>/cmdline of ROLE's node contains, its arguments separated by spaces (a grep
# basic regular expression): its data dir, so that a pid reused by another process after the
# node exited is never signalled.
cmdline_pattern() { printf ' --data-dir %s ' "$(data_dir "$1")" | sed 's/[][\.*^$]/\\&/g'; }

# The pid of ROLE's node when it is running, else nothing (and a non-zero status).
running_pid() {
    local file pid
    file="$(pid_file "$1")"
    [ -s "$file" ] || return 1
    pid="$(tr -dc 0-9 <"$file")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(cmdline_pattern "$1")" || return 1
    echo "$pid"
}

# Asks ROLE's /health/ready: READY_CODE is the HTTP status (000 when nothing answers),
# READY_BODY the answer on one line (the reasons when it is not ready).
readiness() {
    local answer
    answer="$(curl -sS -m 2 -w '\n%{http_code}' "http://$EMPORIUM_CLUSTER_HOST:$(port_of "$1")/health/ready" 2>/dev/null)" \
        || answer=$'\n000'
    READY_CODE="${answer##*$'\n'}"
    READY_BODY="$(printf '%s' "${answer%$'\n'*}" | tr -s '\n ' ' ')"
}

# ---------------------------------------------------------------------------------------------
# up

find_binary() {
    local candidate
    if [ -n "${EMPORIUM_BIN:-}" ]; then
        [ -x "$EMPORIUM_BIN" ] || die "EMPORIUM_BIN=$EMPORIUM_BIN is not an executable file"
        return
    fi
    for candidate in "$(command -v emporium || true)" \
        "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/emporium}" "$REPO/target/release/emporium"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then EMPORIUM_BIN="$candidate"; return; fi
    done
    command -v cargo >/dev/null || die "no emporium binary (EMPORIUM_BIN, PATH, target/release) and no cargo to build one"
    say "no emporium binary found: building it (cargo build -p emporium --release)"
    (cd "$REPO" && cargo build -p emporium --release >&2) || die "cargo build -p emporium --release failed"
    EMPORIUM_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/emporium"
    [ -x "$EMPORIUM_BIN" ] || die "the build did not produce $EMPORIUM_BIN"
}

# Creates the database of EMPORIUM_MYSQL_URL (mysql://user[:password]@host[:port]/database)
# when it is missing, with the mariadb (or mysql) command-line client.
create_database() {
    local pattern='^mysql://([^:@/]+)(:([^@/]*))?@([^:/?]+)(:([0-9]+))?/([A-Za-z0-9_$-]+)([?].*)?$'
    [[ "$EMPORIUM_MYSQL_URL" =~ $pattern ]] \
        || die "EMPORIUM_MYSQL_URL must look like mysql://user[:password]@host[:port]/database"
    local user="${BASH_REMATCH[1]}" password="${BASH_REMATCH[3]}" host="${BASH_REMATCH[4]}"
    local port="${BASH_REMATCH[6]:-3306}" database="${BASH_REMATCH[7]}" client
    client="$(command -v mariadb || command -v mysql || true)"
    [ -n "$client" ] || die "neither the mariadb nor the mysql client is installed: create database '$database' yourself"
    password="$(printf '%b' "${password//%/\\x}")" # the URL's percent-encoding
    if ! MYSQL_PWD="$password" "$client" --protocol=tcp -h "$host" -P "$port" -u "$user" \
        -e "CREATE DATABASE IF NOT EXISTS \`$database\`" 2>"$STATE/mysql.err"; then
        die "cannot create database '$database' on $host:$port as $user: $(cat "$STATE/mysql.err")"
    fi
    rm -f "$STATE/mysql.err"
}

check_broker_reachable() {
    local pattern='^amqps?://([^@/]*@)?([^:/?]+)(:([0-9]+))?'
    [[ "$EMPORIUM_AMQP_URL" =~ $pattern ]] || die "EMPORIUM_AMQP_URL must look like amqp://user:password@host:port/vhost"
    local host="${BASH_REMATCH[2]}" port="${BASH_REMATCH[4]:-5672}"
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null || die "RabbitMQ is not reachable at $host:$port (EMPORIUM_AMQP_URL)"
}

# Fails before anything starts when a port a role that is not running needs is taken.
check_ports_free() {
    local role port
    for role in "$@"; do
        ! running_pid "$role" >/dev/null || continue
        port="$(port_of "$role")"
        if (exec 3<>"/dev/tcp/$EMPORIUM_CLUSTER_HOST/$port") 2>/dev/null; then
            die "port $port ($role) is taken by another process: set EMPORIUM_REGISTRY_PORT / EMPORIUM_NODE_PORT_BASE"
        fi
        if [ "$role" = gateway ] && (exec 3<>"/dev/tcp/$HTTP_HOST/$HTTP_PORT") 2>/dev/null; then
            die "port $HTTP_PORT (the gateway's public listener) is taken by another process: set EMPORIUM_HTTP"
        fi
    done
}

# Uses EMPORIUM_CLUSTER_SECRET or EMPORIUM_CLUSTER_SECRET_FILE when set, else the state dir's
# cluster-secret (made once, 48 random hex digits), handed to the nodes as a file.
# Nodes that were given a secret of the caller's are never joined by one with the state dir's.
ensure_cluster_secret() {
    local role recorded
    if [ -n "${EMPORIUM_CLUSTER_SECRET:-}" ] || [ -n "${EMPORIUM_CLUSTER_SECRET_FILE:-}" ]; then
        SECRET_SOURCE=caller
        return
    fi
    recorded="$(sed -n 's/^SECRET_SOURCE=//p' "$STATE/cluster.env" 2>/dev/null || true)"
    if [ "$recorded" = caller ]; then
        for role in "${ROLES[@]}"; do
            ! running_pid "$role" >/dev/null \
                || die "the running nodes were given EMPORIUM_CLUSTER_SECRET (or _FILE): set it again, or ops/cluster.sh down first"
        done
    fi
    SECRET_SOURCE=state-dir
    if [ ! -s "$STATE/cluster-secret" ]; then
        (umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$STATE/cluster-secret.tmp")
        mv "$STATE/cluster-secret.tmp" "$STATE/cluster-secret"
        say "generated the cluster secret into $STATE/cluster-secret"
    fi
    export EMPORIUM_CLUSTER_SECRET_FILE="$STATE/cluster-secret"
}

start_role() { # start_role ROLE: starts it unless it runs, then waits until it is ready
    local role=$1 pid port log
    port="$(port_of "$role")"
    log="$(log_file "$role")"
    if pid="$(running_pid "$role")"; then
        say "$role is already running (pid $pid)"
    else
        local args=(--role "$role" --listen "$EMPORIUM_CLUSTER_HOST:$port" --node-id "$role-1"
                    --data-dir "$(data_dir "$role")")
        if [ "$role" = registry ]; then
            [ -z "${EMPORIUM_CONFIG_DIR:-}" ] || args+=(--config-dir "$EMPORIUM_CONFIG_DIR")
        else
            args+=(--registry "$REGISTRY_URL")
        fi
        [ "$role" != gateway ] || args+=(--http "$EMPORIUM_HTTP")
        mkdir -p "$(data_dir "$role")"
        printf '=== %s ops/cluster.sh: %s %s\n' "$(date -u +%FT%TZ)" "$EMPORIUM_BIN" "${args[*]}" >>"$log"
        # setsid: a session of its own, so a Ctrl-C meant for the shell that ran `up` does not
        # reach the node; the standard streams are detached (stdout and stderr to the log).
        (cd "$STATE" && exec setsid "$EMPORIUM_BIN" "${args[@]}" </dev/null >>"$log" 2>&1) &
        pid=$!
        echo "$pid" >"$(pid_file "$role")"
        say "started $role (pid $pid, listening on $EMPORIUM_CLUSTER_HOST:$port, log $log)"
    fi
    local deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$(pid_file "$role")"
            tail -n 20 "$log" | sed 's/^/  | /' >&2
            die "$role exited before it was ready (last lines of $log above)"
        fi
        readiness "$role"
        [ "$READY_CODE" != 200 ] || break
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$log" | sed 's/^/  | /' >&2
            die "$role (pid $pid) was not ready within ${READY_TIMEOUT}s: /health/ready answers $READY_CODE ${READY_BODY:-}"
        fi
        sleep 0.2
    done
    say "$role is ready"
}

# Where the bootstrap admin's password is: the block the auth node prints once on stderr.
admin_password_hint() {
    local log line
    log="$(log_file auth)"
    if [ -n "${EMPORIUM_ADMIN_PASSWORD:-}" ] || [ -n "${EMPORIUM_ADMIN_PASSWORD_FILE:-}" ]; then
        echo "  admin      admin@emporium.local, password from EMPORIUM_ADMIN_PASSWORD (taken at this database's first start only)"
    elif line="$(grep -n '^    password  ' "$log" 2>/dev/null | tail -n 1 | cut -d: -f1)" && [ -n "$line" ]; then
        echo "  admin      admin@emporium.local; the auth node printed its generated password once:"
        echo "             line $line of $log   (grep -B4 -A3 '^    password  ' $log)"
    else
        echo "  admin      admin@emporium.local; no password block in $log: the account existed before"
        echo "             (set a new password: EMPORIUM_MYSQL_URL=... emporium admin reset-password)"
    fi
}

cmd_up() {
    local roles=("$@") role
    [ ${#roles[@]} -gt 0 ] || roles=("${ROLES[@]}")
    for role in "${roles[@]}"; do port_of "$role" >/dev/null; done
    command -v curl >/dev/null || die "curl is needed (readiness checks)"
    command -v setsid >/dev/null || die "setsid is needed (util-linux)"
    mkdir -p "$STATE/run" "$STATE/logs" "$STATE/data"
    # Nothing in the state dir belongs in a git repository.
    [ -f "$STATE/.gitignore" ] || echo '*' >"$STATE/.gitignore"
    check_ports_free "${roles[@]}"
    find_binary
    export EMPORIUM_BIN
    create_database
    check_broker_reachable
    ensure_cluster_secret
    record_settings
    for role in "${ROLES[@]}"; do # always in start order, whatever order ROLE... came in
        case " ${roles[*]} " in *" $role "*) start_role "$role" ;; esac
    done
    echo "Emporium cluster up (state in $STATE)"
    echo "  gateway    $GATEWAY_URL   (public API /api/v1, /docs, /dashboard)"
    echo "  registry   $REGISTRY_URL   (/registry/v1/instances, cluster credential)"
    admin_password_hint
    echo "  logs       $STATE/logs/ROLE.log"
    echo "  status     ops/cluster.sh status      stop: ops/cluster.sh down"
}

# ---------------------------------------------------------------------------------------------
# down, status

stop_role() {
    [ -e "$(pid_file "$1")" ] || return 0 # never started here, or stopped already
    "$REPO/ops/lib/stop_pidfile.sh" "ops/cluster.sh $1" "$(cmdline_pattern "$1")" "$(pid_file "$1")"
}

cmd_down() {
    local roles=("$@") role index failed=0 pids=()
    [ ${#roles[@]} -gt 0 ] || roles=("${ROLES[@]}")
    for role in "${roles[@]}"; do port_of "$role" >/dev/null; done
    mkdir -p "$STATE/run"
    # Every role but the registry at once (each is bounded to 10 s), then the registry, so that
    # the others can deregister while it still runs.
    for ((index = ${#ROLES[@]} - 1; index >= 1; index--)); do
        role="${ROLES[$index]}"
        case " ${roles[*]} " in *" $role "*) stop_role "$role" & pids+=($!) ;; esac
    done
    for index in "${pids[@]}"; do wait "$index" || failed=1; done
    case " ${roles[*]} " in *" registry "*) stop_role registry || failed=1 ;; esac
    [ "$failed" = 0 ] || die "some nodes could not be stopped (see above)"
    echo "Emporium cluster down: ${roles[*]} (data, logs and secret kept in $STATE)"
}

cmd_status() {
    local role pid all_ready=0
    printf '%-13s %-8s %-21s %s\n' ROLE PID LISTEN READY
    for role in "${ROLES[@]}"; do
        pid="$(running_pid "$role")" || pid=-
        readiness "$role"
        [ "$pid" != - ] || all_ready=1
        if [ "$READY_CODE" = 200 ]; then
            printf '%-13s %-8s %-21s %s\n' "$role" "$pid" "$EMPORIUM_CLUSTER_HOST:$(port_of "$role")" yes
        else
            [ "$READY_CODE" != 000 ] || READY_BODY="nothing answers"
            printf '%-13s %-8s %-21s %s\n' "$role" "$pid" "$EMPORIUM_CLUSTER_HOST:$(port_of "$role")" \
                "no ($READY_CODE ${READY_BODY:-})"
            all_ready=1
        fi
    done
    echo "gateway $GATEWAY_URL, registry $REGISTRY_URL, state $STATE"
    return "$all_ready"
}

command="$1"
shift
case "$command" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) [ $# -eq 0 ] || usage; cmd_status ;;
esac
