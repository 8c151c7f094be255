# shellcheck shell=bash
# keybound's one installer. Every tool a keybound script needs is installed by a function
# of this file, one way, so that the demo, the tests and CI can never install the same
# tool differently. Sourced by scripts/setup.sh (and through it by scripts/demo.sh and
# scripts/test.sh), js/build.sh, tests/interop/run.sh and scripts/check-install.sh;
# scripts/check-install.sh fails when any other script runs an install command itself.
#
# Each function is safe to run again: it does nothing when its tool is already there.
#
# Variables:
#   KEYBOUND_INSTALL_ROOT   install cargo tools under this root (`cargo install --root`)
#                           instead of $CARGO_HOME; scripts/check-install.sh uses it to
#                           exercise the real install commands in CI
#   KEYBOUND_INSTALL_FORCE  1: install even when the tool is already on PATH

kb_say() { printf '\033[1m[keybound]\033[0m %s\n' "$*" >&2; }
kb_die() {
    printf '\033[1;31m[keybound]\033[0m %s\n' "$*" >&2
    exit 1
}

# The repository root (this file is scripts/lib/install.sh).
KB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Rust through rustup, and Node.js 20.19+ / 22.12+ with npm: the two things a fresh
# machine must bring itself (README, "Quick start").
kb_require_rust() {
    command -v cargo >/dev/null ||
        kb_die "Rust is missing: install it with rustup (https://rustup.rs), then run this again"
    command -v rustup >/dev/null ||
        kb_die "rustup is missing: keybound installs Rust targets and components with it; install Rust with https://rustup.rs"
}
kb_require_node() {
    command -v node >/dev/null && command -v npm >/dev/null ||
        kb_die "Node.js with npm is missing: install Node.js 20.19 or newer (https://nodejs.org)"
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 22 || (a === 22 && b >= 12) || a === 21 || (a === 20 && b >= 19) ? 0 : 1)' ||
        kb_die "Node.js $(node --version) is too old (Vite 7 needs 20.19+ or 22.12+): install a newer Node.js"
}

kb_install_rust_target() {
    local target=$1
    if ! rustup target list --installed | grep -qx "$target"; then
        kb_say "adding the Rust target $target"
        rustup target add "$target"
    fi
}

kb_install_rust_component() {
    local component=$1
    if ! rustup component list --installed | grep -q "^$component"; then
        kb_say "adding the Rust component $component"
        rustup component add "$component"
    fi
}

# A whole toolchain (the fuzzers need nightly; the product builds on stable).
kb_install_toolchain() {
    local toolchain=$1
    if ! rustup toolchain list | grep -q "^$toolchain"; then
        kb_say "installing the Rust toolchain $toolchain (minimal profile)"
        rustup toolchain install "$toolchain" --profile minimal
    fi
}

# `cargo install CRATE [--version V]` for a command-line tool. Never `--locked`: the
# registry mirror this project is built against may lack a release some tool's own lock
# file names, and `--locked` then fails before building anything.
#   kb_install_cargo_tool COMMAND CRATE [VERSION]
kb_install_cargo_tool() {
    local command=$1 crate=$2 version=${3:-}
    local root=${KEYBOUND_INSTALL_ROOT:-}
    local bin=$command
    if [ -n "$root" ]; then bin=$root/bin/$command; fi
    if [ "${KEYBOUND_INSTALL_FORCE:-0}" != 1 ] && "$bin" --version >/dev/null 2>&1 &&
        { [ -z "$version" ] || "$bin" --version 2>/dev/null | grep -q " $version\$"; }; then
        return 0
    fi
    local args=(install -q "$crate")
    if [ -n "$version" ]; then args+=(--version "$version"); fi
    if [ -n "$root" ]; then args+=(--root "$root"); fi
    if [ "${KEYBOUND_INSTALL_FORCE:-0}" = 1 ]; then args+=(--force); fi
    kb_say "installing $crate${version:+ $version} (cargo install; a few minutes, once)"
    cargo "${args[@]}"
}

# The wasm-bindgen version Cargo.lock resolved: wasm-bindgen-cli must equal it exactly.
kb_wasm_bindgen_version() {
    local version
    version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' \
        "$KB_ROOT/Cargo.lock")
    [ -n "$version" ] || kb_die "could not read the wasm-bindgen version from Cargo.lock"
    echo "$version"
}

kb_install_wasm_bindgen() {
    kb_install_cargo_tool wasm-bindgen wasm-bindgen-cli "$(kb_wasm_bindgen_version)"
}

# Debian packages, named by the command each provides: `kb_install_apt chromium:chromium
# chromedriver:chromium-driver`. Uses sudo when not root.
kb_install_apt() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null ||
        kb_die "needs ${missing[*]} and this is not a Debian-like system (no apt-get): install them, then run this again"
    local sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    kb_say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The Debian packages the test suites need: Chromium and chromedriver (wasm and browser
# tests), redis-server (Redis store tests; they start their own instances on free ports,
# the system service the package starts is not used), openssl (test certificates).
KB_APT_TEST_TOOLS=(chromium:chromium chromedriver:chromium-driver redis-server:redis-server openssl:openssl)

# The npm packages of DIR, as its package-lock.json pins them (`npm ci`), again only when
# the lock file changed since the last install; `npm install` where there is no lock file.
kb_install_npm() {
    local dir=$KB_ROOT/$1 hash
    [ -f "$dir/package.json" ] || kb_die "no package.json in $1"
    if [ -f "$dir/package-lock.json" ]; then
        hash=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
        if [ "$(cat "$dir/node_modules/.keybound-lock" 2>/dev/null)" != "$hash" ]; then
            kb_say "installing the npm packages of $1 (npm ci)"
            (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
            echo "$hash" >"$dir/node_modules/.keybound-lock"
        fi
    else
        hash=$(sha256sum "$dir/package.json" | cut -c1-16)
        if [ "$(cat "$dir/node_modules/.keybound-lock" 2>/dev/null)" != "$hash" ]; then
            kb_say "installing the npm packages of $1 (npm install)"
            (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
            echo "$hash" >"$dir/node_modules/.keybound-lock"
        fi
    fi
}

# One npm tarball into DIR's node_modules without touching its package.json (the demo's
# web app takes the SDK from js/keybound-*.tgz like any app would). npm keeps an
# installed file: dependency even when the tarball changed, so the tarball's hash decides.
kb_install_npm_tarball() {
    local dir=$KB_ROOT/$1 tarball=$2 hash
    hash=$(sha256sum "$tarball" | cut -c1-16)
    if [ "$(cat "$dir/node_modules/.keybound-tarball" 2>/dev/null)" != "$hash" ]; then
        kb_say "installing $(basename "$tarball") into $1"
        (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error "$tarball")
        echo "$hash" >"$dir/node_modules/.keybound-tarball"
    fi
}

# wasm-opt comes from the npm package `binaryen` in js/ (a current release: Debian's
# wasm-opt 108 can emit a module that fails to instantiate in the browser).
kb_wasm_opt() {
    kb_install_npm js
    echo "$KB_ROOT/js/node_modules/.bin/wasm-opt"
}

# Everything needed to build the SDK and the demo: no browser, no Redis.
kb_install_for_demo() {
    kb_require_rust
    kb_require_node
    kb_install_rust_target wasm32-unknown-unknown
    kb_install_wasm_bindgen
    kb_install_npm js
}

# Everything the whole test suite needs: the demo's tools, the lint components, the
# Debian packages of the browser and Redis tests, the npm packages of the test suites.
kb_install_for_test() {
    kb_install_for_demo
    kb_install_rust_component clippy
    kb_install_rust_component rustfmt
    kb_install_apt "${KB_APT_TEST_TOOLS[@]}"
    local dir
    for dir in tests/interop tests/browser examples/demo/test; do
        if [ -f "$KB_ROOT/$dir/package.json" ]; then kb_install_npm "$dir"; fi
    done
}
