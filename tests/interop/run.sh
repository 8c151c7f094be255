#!/usr/bin/env bash
# Interop tests: keybound's CLI against the npm packages `dpop` (panva) and `jose`.
# Installs the locked npm packages, builds the CLI unless KEYBOUND_BIN names one, and
# runs `node --test`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -z "${KEYBOUND_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet -p keybound-cli)
  export KEYBOUND_BIN="$root/target/debug/keybound"
fi
cd "$here"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
node --test
