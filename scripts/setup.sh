#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test keybound, through the one
# installer (scripts/lib/install.sh). Safe to run again: every step is skipped when its
# tool is already there.
#
#   scripts/setup.sh          everything the tests need (scripts/test.sh runs this): the
#                             wasm32 target, wasm-bindgen-cli at the version in Cargo.lock,
#                             clippy and rustfmt, Chromium + chromedriver, redis-server,
#                             openssl, and the npm packages (wasm-opt comes with js/'s)
#   scripts/setup.sh demo     only what the demo needs (scripts/demo.sh runs this): the
#                             wasm32 target, wasm-bindgen-cli, js/'s npm packages
#
# A fresh machine: Debian 12 with Rust installed through rustup, Node.js 20.19+ with npm,
# and sudo (or root) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh

case "${1:-test}" in
    test) kb_install_for_test ;;
    demo) kb_install_for_demo ;;
    *) kb_die "usage: scripts/setup.sh [test|demo]" ;;
esac
kb_say "ready"
