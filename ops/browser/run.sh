#!/usr/bin/env bash
# The supervisor dashboard in a real browser: headless Chromium, driven by Selenium, against a
# whole cluster that ops/cluster.sh starts (ops/browser/dashboard_test.py says what is checked).
#
#   EMPORIUM_BIN=$CARGO_TARGET_DIR/debug/emporium ops/browser/run.sh
#   ops/browser/run.sh                          # without EMPORIUM_BIN: what ops/cluster.sh finds
#                                               # (PATH, target/release; else it builds one: slow)
#   ops/browser/run.sh --screenshots shots/     # also saves cluster.png, node.png, faults.png, ...
#   ops/browser/run.sh --help                   # the test's own options
#
# 1. Makes sure Debian's chromium and chromium-driver are installed (apt-get when the commands
#    `chromium` / `chromedriver` are missing).
# 2. Installs Selenium (PyPI, pinned) into a cached venv ($EMPORIUM_CACHE/browser-venv;
#    idempotent, one install at a time). Selenium drives the system chromedriver: Selenium
#    Manager never downloads a driver or a browser (SE_OFFLINE=true).
# 3. Runs ops/browser/dashboard_test.py with that venv's python, its arguments passed through.
# Needs what ops/cluster.sh needs: MariaDB on 127.0.0.1:3306 (the mariadb client), RabbitMQ on
# 127.0.0.1:5672, curl.
set -euo pipefail

cd "$(dirname "$0")/../.."
CACHE="${EMPORIUM_CACHE:-${EMPORIUM_CACHE_DIR:-$HOME/.cache/emporium}}"
VENV="${EMPORIUM_BROWSER_VENV:-$CACHE/browser-venv}"
REQS=(selenium==4.43.0) # 4.52 and later need certifi>=2026.10.23, not installable everywhere yet

say() { printf 'ops/browser/run.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

ensure_debian_package() { # ensure_debian_package COMMAND PACKAGE: apt-get install when missing
    ops/lib/debian_package.sh "ops/browser/run.sh" "$1" "$2" || die "could not provide $1"
}

ensure_debian_package chromium chromium
ensure_debian_package chromedriver chromium-driver
command -v python3 >/dev/null 2>&1 || die "python3 is needed (3.11 or newer)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 is $(python3 -V 2>&1), 3.11 or newer is needed"

ops/lib/pip_venv.sh "ops/browser/run.sh" "$VENV" python "${REQS[@]}" || die "could not install ${REQS[*]} into $VENV"
"$VENV/bin/python" -c 'import selenium' 2>/dev/null || die "$VENV has no selenium: remove it and run again"

export SE_OFFLINE=true   # Selenium Manager: no downloads, the system chromedriver only
export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
exec "$VENV/bin/python" ops/browser/dashboard_test.py "$@"
