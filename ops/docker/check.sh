#!/usr/bin/env bash
# Checks the Dockerfile's dependency stage without a Docker engine: it copies every crate
# manifest of the workspace (no more, no less), and with the stand-ins of
# ops/docker/stub-workspace.sh those manifests and Cargo.lock resolve as a workspace
# (`cargo tree --locked --offline`, after ops/test.sh's build fetched the dependencies).
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { printf 'ops/docker/check.sh: %s\n' "$*" >&2; exit 1; }

copied="$(sed -n 's#^COPY \(actors/[a-z_-]*/Cargo.toml\|nodes/Cargo.toml\) .*#\1#p' Dockerfile | sort)"
present="$(ls actors/*/Cargo.toml nodes/Cargo.toml | sort)"
[ "$copied" = "$present" ] || die "the Dockerfile copies these manifests:
$copied
but the workspace has:
$present"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/emporium-docker-check.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
cp Cargo.toml Cargo.lock "$scratch/"
for manifest in $present; do
    mkdir -p "$scratch/$(dirname "$manifest")"
    cp "$manifest" "$scratch/$manifest"
done
sh ops/docker/stub-workspace.sh "$scratch"
(cd "$scratch" && cargo tree --locked --offline -p emporium -e normal >/dev/null) \
    || die "the stand-in workspace of the dependency stage does not resolve (see above)"
echo "Dockerfile: the dependency stage copies the $(echo "$present" | wc -l) crate manifests and they resolve with Cargo.lock"
