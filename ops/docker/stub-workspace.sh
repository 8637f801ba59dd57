#!/bin/sh
# Gives every crate of the workspace at $1 (its manifests only, as the Dockerfile's dependency
# stage copies them) an empty stand-in for each source file its manifest needs, so that
# `cargo build` compiles the dependencies before the real sources are there.
# Checked by ops/docker/check.sh (ops/test.sh) against a copy of the manifests.
set -eu
root="$1"
for manifest in "$root"/actors/*/Cargo.toml "$root"/nodes/Cargo.toml; do
    dir="$(dirname "$manifest")"
    mkdir -p "$dir/src"
    if grep -q '^\[\[bin\]\]' "$manifest"; then
        echo 'fn main() {}' >"$dir/src/main.rs"
    else
        : >"$dir/src/lib.rs"
    fi
    # Tests and examples the manifest declares must exist for cargo to read it.
    awk '/^\[\[(test|example|bench)\]\]/ { kind = $0; next } /^name *=/ && kind { gsub(/[" ]/, "", $0); split($0, part, "="); print kind, part[2]; kind = "" } /^\[/ { kind = "" }' "$manifest" |
        while read -r kind name; do
            case "$kind" in
                *test*) mkdir -p "$dir/tests" && : >"$dir/tests/$name.rs" ;;
                *example*) mkdir -p "$dir/examples" && echo 'fn main() {}' >"$dir/examples/$name.rs" ;;
                *bench*) mkdir -p "$dir/benches" && echo 'fn main() {}' >"$dir/benches/$name.rs" ;;
            esac
        done
done
