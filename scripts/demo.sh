#!/usr/bin/env bash
# Builds and starts the keybound demo: the browser SDK (WebAssembly + npm package), the
# web app that installs that package, and the demo server. Installs what is missing
# first (the wasm32 target, wasm-bindgen-cli, npm packages); needs Rust (rustup) and
# Node.js 20.19+ with npm. Only what changed is rebuilt, so running it again is quick.
#
#   scripts/demo.sh                    build, then serve http://127.0.0.1:8080
#   scripts/demo.sh --store memory     arguments go to keybound-demo (see --help)
#   scripts/demo.sh --build-only       build everything, start nothing
#   KEYBOUND_ACCESS_TTL_SECS=20 KEYBOUND_IDLE_TIMEOUT_SECS=60 scripts/demo.sh
#                                      short lifetimes, to watch refresh and expiry
#
# Every KEYBOUND_* variable of keybound_server::settings is passed through; flags
# (--listen, --public-origin, --store, --data-dir) override them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\033[1m[demo]\033[0m %s\n' "$*" >&2; }
die() {
    printf '\033[1;31m[demo]\033[0m %s\n' "$*" >&2
    exit 1
}

build_only=false
args=()
for arg in "$@"; do
    case "$arg" in
        --build-only) build_only=true ;;
        *) args+=("$arg") ;;
    esac
done

# ---- tools ---------------------------------------------------------------------------
command -v cargo >/dev/null || die "Rust is missing: install it with https://rustup.rs, then run this again"
command -v node >/dev/null && command -v npm >/dev/null ||
    die "Node.js with npm is missing: install Node.js 20.19 or newer (https://nodejs.org)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
         process.exit(a > 22 || (a === 22 && b >= 12) || (a === 21) || (a === 20 && b >= 19) ? 0 : 1)' ||
    die "Node.js $(node --version) is too old for Vite 7: install 20.19+ or 22.12+"

if command -v rustup >/dev/null; then
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        say "adding the Rust target wasm32-unknown-unknown"
        rustup target add wasm32-unknown-unknown
    fi
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen version Cargo.lock resolved.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$wb_version" ] || die "could not read the wasm-bindgen version from Cargo.lock"
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
    say "installing wasm-bindgen-cli $wb_version (a few minutes, once)"
    cargo install --locked -q wasm-bindgen-cli --version "$wb_version"
fi

# npm ci when the lock file changed since the last install (same marker as setup.sh).
npm_ci() {
    local dir=$1 hash
    hash=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
    if [ "$(cat "$dir/node_modules/.keybound-lock" 2>/dev/null)" != "$hash" ]; then
        say "installing the npm packages of $dir"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$hash" >"$dir/node_modules/.keybound-lock"
    fi
}
# js/ brings a current wasm-opt (npm `binaryen`) for the SDK build.
npm_ci js

# Whether $1 is missing or older than any file under the other arguments.
stale() {
    local out=$1
    shift
    [ ! -e "$out" ] && return 0
    [ -n "$(find "$@" -type f -newer "$out" -not -path '*/node_modules/*' -print -quit 2>/dev/null)" ]
}

# ---- the SDK: wasm + npm package ------------------------------------------------------
version=$(node -p 'require("./js/package.json").version')
tarball=js/keybound-$version.tgz
if stale "$tarball" crates/keybound-client crates/keybound-proto js/index.js js/index.d.ts \
    js/package.json js/README.md js/build.sh Cargo.lock; then
    say "building the SDK (js/build.sh)"
    js/build.sh
fi

# ---- the web app: installs the package from the tarball, like any app would ------------
web=examples/demo/web
if stale "$web/node_modules/.keybound-installed" "$web/package.json" "$web/.npmrc"; then
    say "installing the web app's npm packages"
    (cd "$web" && npm install --no-audit --no-fund --loglevel=error)
    touch "$web/node_modules/.keybound-installed"
fi
# npm keeps an installed file: dependency even when the tarball changed: install the
# current one explicitly whenever its content differs from the installed one.
tar_hash=$(sha256sum "$tarball" | cut -c1-16)
if [ "$(cat "$web/node_modules/.keybound-tarball" 2>/dev/null)" != "$tar_hash" ]; then
    say "installing keybound from $tarball into the web app"
    (cd "$web" && npm install --no-save --no-audit --no-fund --loglevel=error "$ROOT/$tarball")
    echo "$tar_hash" >"$web/node_modules/.keybound-tarball"
fi
if stale "$web/dist/index.html" "$web/src" "$web/public" "$web/index.html" "$web/vite.config.ts" \
    "$web/tsconfig.json" "$web/node_modules/.keybound-tarball"; then
    say "building the web app"
    (cd "$web" && npm run --silent build -- --logLevel warn)
fi

# ---- the server -----------------------------------------------------------------------
say "building the server (a few minutes the first time)"
cargo build -p keybound-demo
target_dir=$(cargo metadata --format-version 1 --no-deps |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
bin=$target_dir/debug/keybound-demo

if $build_only; then
    say "built: $bin"
    exit 0
fi
say "starting (Ctrl-C stops it)"
exec "$bin" ${args[@]+"${args[@]}"}
