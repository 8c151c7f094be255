#!/usr/bin/env bash
# Builds the npm package `keybound`:
#   crates/keybound-client   (the engine, loaded at start)
#   crates/keybound-fallback (the in-module signer, fetched only with forceWasmKeys)
#   each: cargo (wasm32, size-optimised release) -> wasm-bindgen --target web -> wasm-opt -Oz -> js/pkg/ (the glue to js/glue/)
# then bundles the JavaScript (js/*.js and the glue) with esbuild into js/pkg/keybound.js,
# prints the start and fallback bytes (failing above js/size-budget.json) and
# `npm pack` writes js/keybound-<version>.tgz.
#   js/build.sh            build and pack
#   js/build.sh --no-pack  build only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib/install.sh
OUT=$ROOT/js/pkg
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')

# `wasm-release` is `release` with every crate optimised for size (root Cargo.toml).
# The engine with feature `module`: no standard library in the module.
cargo build -p keybound-client -p keybound-fallback --features keybound-client/module \
    --target wasm32-unknown-unknown --profile wasm-release

# wasm-opt (the npm `binaryen`) and esbuild: js/'s dev dependencies, through the one
# installer (installing first, so npm's own output does not end up in the path).
kb_install_npm js >&2
WASM_OPT=$(kb_wasm_opt)

# The wasm-bindgen glue is an input of the bundle, not part of the package: it goes to
# js/glue/ (git-ignored), so js/pkg/ holds exactly what the package ships.
GLUE=$ROOT/js/glue
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$OUT" "$GLUE"
mkdir -p "$OUT" "$GLUE"
for crate in keybound_client keybound_fallback; do
    wasm-bindgen --target web --no-typescript --out-dir "$TMP" \
        "$TARGET_DIR/wasm32-unknown-unknown/wasm-release/$crate.wasm"
    "$WASM_OPT" -Oz --converge --strip-debug --strip-producers \
        -o "$OUT/${crate}_bg.wasm" "$TMP/${crate}_bg.wasm"
    cp "$TMP/$crate.js" "$GLUE/"
done

# One minified ES module for the page (the JavaScript above and the engine's glue) and
# one chunk for the fallback signer's glue, which the bundle imports only when needed
# (and bundlers such as Vite split off the same way).
"$ROOT/js/node_modules/.bin/esbuild" "$ROOT/js/index.js" --bundle --format=esm --minify \
    --splitting --target=es2022 --outdir="$OUT" --entry-names=keybound \
    --chunk-names='[name]-[hash]' --log-level=warning

node "$ROOT/js/size.mjs"

if [ "${1:-}" != "--no-pack" ]; then
    (cd "$ROOT/js" && npm pack --silent >/dev/null && ls keybound-*.tgz)
fi
