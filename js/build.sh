#!/usr/bin/env bash
# Builds the npm package `keybound` from crates/keybound-client:
#   cargo (wasm32, size-optimised release) -> wasm-bindgen --target web -> wasm-opt -Oz -> js/pkg/
# then `npm pack` writes js/keybound-<version>.tgz.
#   js/build.sh            build and pack
#   js/build.sh --no-pack  build only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib/install.sh
OUT=$ROOT/js/pkg
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')

# `wasm-release` is `release` with every crate optimised for size (root Cargo.toml).
cargo build -p keybound-client --target wasm32-unknown-unknown --profile wasm-release
WASM=$TARGET_DIR/wasm32-unknown-unknown/wasm-release/keybound_client.wasm

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$TMP" "$WASM"

# wasm-opt: the npm `binaryen` of js/'s dev dependencies, through the one installer.
WASM_OPT=$(kb_wasm_opt)
"$WASM_OPT" -Oz --strip-debug --strip-producers \
    -o "$TMP/keybound_client_bg.opt.wasm" "$TMP/keybound_client_bg.wasm"

rm -rf "$OUT"
mkdir -p "$OUT"
cp "$TMP/keybound_client.js" "$OUT/"
cp "$TMP/keybound_client_bg.opt.wasm" "$OUT/keybound_client_bg.wasm"

wasm_gz=$(gzip -9 -c "$OUT/keybound_client_bg.wasm" | wc -c)
glue_gz=$(gzip -9 -c "$OUT/keybound_client.js" | wc -c)
index_gz=$(gzip -9 -c "$ROOT/js/index.js" | wc -c)
echo "keybound: wasm $(wc -c < "$OUT/keybound_client_bg.wasm") B (gzip -9 $wasm_gz B), glue gzip $glue_gz B, index.js gzip $index_gz B, total gzip $((wasm_gz + glue_gz + index_gz)) B"

if [ "${1:-}" != "--no-pack" ]; then
    (cd "$ROOT/js" && npm pack --silent >/dev/null && ls keybound-*.tgz)
fi
