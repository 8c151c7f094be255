#!/usr/bin/env bash
# Builds and starts the keybound demo: the browser SDK (WebAssembly + npm package), the
# web app that installs that package, and the demo server. Installs what is missing
# first, through the one installer (`scripts/setup.sh demo`: the wasm32 target,
# wasm-bindgen-cli, npm packages; no browser, no Redis); needs Rust (rustup) and
# Node.js 20.19+ with npm. Only what changed is rebuilt, so running it again is quick.
#
#   scripts/demo.sh                    build, then serve http://127.0.0.1:8080
#   scripts/demo.sh --store memory     arguments go to keybound-demo (see --help)
#   scripts/demo.sh --build-only       build everything, start nothing
#   KEYBOUND_ACCESS_TTL_SECS=20 KEYBOUND_IDLE_TIMEOUT_SECS=60 scripts/demo.sh
#                                      short lifetimes, to watch refresh and expiry
#   KEYBOUND_DBSC=on KEYBOUND_TLS_CERT=cert.pem KEYBOUND_TLS_KEY=key.pem \
#     KEYBOUND_PUBLIC_ORIGIN=https://localhost:8080 scripts/demo.sh
#                                      DBSC mode over HTTPS: sign in with the browser's own
#                                      key (examples/demo/README.md says how to make the
#                                      certificate and have the browser trust it)
#
# Every KEYBOUND_* variable of keybound_server::settings is passed through; flags
# (--listen, --public-origin, --store, --data-dir) override them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib/install.sh

say() { printf '\033[1m[demo]\033[0m %s\n' "$*" >&2; }

build_only=false
args=()
for arg in "$@"; do
    case "$arg" in
        --build-only) build_only=true ;;
        *) args+=("$arg") ;;
    esac
done

# ---- tools (the one installer: wasm32 target, wasm-bindgen-cli, js/'s npm packages) ----
"$ROOT/scripts/setup.sh" demo

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
kb_install_npm "$web"
kb_install_npm_tarball "$web" "$ROOT/$tarball"
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
