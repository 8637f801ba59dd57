#!/usr/bin/env bash
# Makes sure COMMAND is on PATH, installing the Debian package PACKAGE with apt-get when it is
# missing (apt-get update only when the first install fails). Shared by ops/test.sh and
# ops/browser/run.sh. Idempotent; fails loudly when the command is still missing.
#
# Usage:  ops/lib/debian_package.sh NAME COMMAND PACKAGE
#   NAME    how the messages on stderr start (the calling script, e.g. ops/test.sh)
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: ops/lib/debian_package.sh NAME COMMAND PACKAGE" >&2
    exit 2
fi
NAME=$1 COMMAND=$2 PACKAGE=$3
say() { printf '%s: %s\n' "$NAME" "$*" >&2; }

command -v "$COMMAND" >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null 2>&1 || { say "$COMMAND is needed (Debian package $PACKAGE) and there is no apt-get to install it"; exit 1; }
say "installing $PACKAGE (apt-get)"
{ apt-get install -y -q "$PACKAGE" || { apt-get update -q && apt-get install -y -q "$PACKAGE"; }; } >/dev/null 2>&1 \
    || { say "$COMMAND is needed and apt-get could not install $PACKAGE"; exit 1; }
command -v "$COMMAND" >/dev/null 2>&1 || { say "apt-get installed $PACKAGE but there is still no $COMMAND on PATH"; exit 1; }
