#!/usr/bin/env bash
# Checks keybound's install path, so that the README's first command can never again
# fail on a fresh machine while the tests pass on a prepared one. CI runs it.
#
#  1. One install path: no script but scripts/lib/install.sh runs an install command
#     (cargo install, rustup target/component/toolchain add/install, apt-get install,
#     npm ci / npm install). Everything else calls the installer's functions.
#  2. The installer's commands work here, for real: wasm-bindgen-cli (kb_install_wasm_bindgen)
#     and cargo-fuzz (kb_install_cargo_tool, for scripts/fuzz.sh) are installed into a
#     temporary root (their builds are cached under ~/.cache/keybound so that later runs
#     take seconds, but the version resolution and the install itself run every time),
#     and the Debian packages of the test suites are resolved by apt-get (a simulated
#     install).
#
#   scripts/check-install.sh            both checks
#   scripts/check-install.sh --static   only check 1 (no network, a second)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh

# ---- 1. one install path ---------------------------------------------------------------
pattern='(cargo[[:space:]]+(\+[^[:space:]]+[[:space:]]+)?install|rustup[[:space:]]+(target|component)[[:space:]]+add|rustup[[:space:]]+toolchain[[:space:]]+install|apt-get[[:space:]]+(-[^[:space:]]+[[:space:]]+)*install|apt[[:space:]]+install|npm[[:space:]]+(ci|install|i)([[:space:]]|$))'
offenders=$(git ls-files -z -- '*.sh' '*.bash' '.ci/*' 'scripts/*' '**/run.sh' |
    xargs -0 grep -EnH "$pattern" 2>/dev/null |
    grep -v '^scripts/lib/install\.sh:' |
    grep -Ev '^[^:]+:[0-9]+:[[:space:]]*#' |
    grep -v '^scripts/check-install\.sh:' || true)
if [ -n "$offenders" ]; then
    echo "check-install: these lines install a tool outside scripts/lib/install.sh;" >&2
    echo "call the installer's function instead, so every script installs it the same way:" >&2
    echo "$offenders" >&2
    exit 1
fi
echo "check-install: one install path (scripts/lib/install.sh)"
if [ "${1:-}" = --static ]; then exit 0; fi

# ---- 2. the installer's commands, for real --------------------------------------------
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
version=$(kb_wasm_bindgen_version)
mkdir -p "$HOME/.cache/keybound"
(
    export KEYBOUND_INSTALL_ROOT=$root
    export CARGO_TARGET_DIR=$HOME/.cache/keybound/install-check-target
    kb_install_wasm_bindgen
)
got=$("$root/bin/wasm-bindgen" --version)
if [ "$got" != "wasm-bindgen $version" ]; then
    echo "check-install: kb_install_wasm_bindgen installed '$got', expected wasm-bindgen $version" >&2
    exit 1
fi
echo "check-install: kb_install_wasm_bindgen installs $got"

(
    export KEYBOUND_INSTALL_ROOT=$root
    export CARGO_TARGET_DIR=$HOME/.cache/keybound/install-check-target
    kb_install_cargo_tool cargo-fuzz cargo-fuzz
)
got=$("$root/bin/cargo-fuzz" --version) ||
    { echo "check-install: kb_install_cargo_tool did not install cargo-fuzz" >&2; exit 1; }
echo "check-install: kb_install_cargo_tool installs $got"

if command -v apt-get >/dev/null; then
    packages=()
    for pair in "${KB_APT_TEST_TOOLS[@]}"; do packages+=("${pair#*:}"); done
    apt-get install -s -qq "${packages[@]}" >/dev/null
    echo "check-install: apt-get resolves ${packages[*]}"
fi
