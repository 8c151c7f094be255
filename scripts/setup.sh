#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test keybound: the wasm32 target,
# wasm-bindgen-cli at the exact version in Cargo.lock, Chromium + chromedriver,
# redis-server, wasm-opt, and the npm packages of the JS parts. Safe to run again:
# every step is skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi
for component in clippy rustfmt; do
    if ! rustup component list --installed | grep -q "^$component"; then
        rustup component add "$component"
    fi
done

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v wasm-opt >/dev/null || need_apt+=(binaryen)
if ((${#need_apt[@]})); then
    say "installing Debian packages: ${need_apt[*]}"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # The Debian package starts a system Redis on port 6379; keybound's tests start
    # their own instances on free ports and do not need it.
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen version the lock file resolved.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$wb_version" ]; then
    echo "setup: could not read the wasm-bindgen version from Cargo.lock" >&2
    exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
    say "installing wasm-bindgen-cli $wb_version (takes a few minutes)"
    cargo install -q wasm-bindgen-cli --version "$wb_version"
fi

# examples/demo/web is installed by scripts/demo.sh: it depends on the SDK tarball that
# js/build.sh makes.
for dir in js tests/interop tests/browser examples/demo/test; do
    if [ -f "$dir/package.json" ]; then
        if [ -f "$dir/package-lock.json" ]; then
            lock_hash=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
            if [ "$(cat "$dir/node_modules/.keybound-lock" 2>/dev/null)" != "$lock_hash" ]; then
                say "npm ci in $dir"
                (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
                echo "$lock_hash" > "$dir/node_modules/.keybound-lock"
            fi
        elif [ ! -d "$dir/node_modules" ]; then
            say "npm install in $dir"
            (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
        fi
    fi
done
say "ready"
