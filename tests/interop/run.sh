#!/usr/bin/env bash
# Interop tests: keybound's CLI and the keybound-minimal server against the npm packages
# `dpop` (panva) and `jose`. Installs the locked npm packages, builds the CLI and the
# minimal server unless KEYBOUND_BIN and KEYBOUND_MINIMAL_BIN name them, and runs
# `node --test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -z "${KEYBOUND_BIN:-}" ] || [ -z "${KEYBOUND_MINIMAL_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p keybound-cli -p keybound-example-minimal)
fi
export KEYBOUND_BIN="${KEYBOUND_BIN:-$root/target/debug/keybound}"
export KEYBOUND_MINIMAL_BIN="${KEYBOUND_MINIMAL_BIN:-$root/target/debug/keybound-minimal}"
. "$root/scripts/lib/install.sh"
kb_install_npm tests/interop
cd "$here"
node --test
