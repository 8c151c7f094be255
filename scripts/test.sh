#!/usr/bin/env bash
# Runs every keybound test: Rust unit, integration and property tests (all stores),
# wasm tests in headless Chromium, the SDK build and type check, Node interop tests
# and the Playwright end-to-end browser tests. Installs what is missing first.
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh rust       only the named stages (rust wasm sdk interop browser demo)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

./scripts/setup.sh

stages=("$@")
if [ ${#stages[@]} -eq 0 ]; then stages=(rust wasm sdk interop browser demo); fi
passed=0
failed=0
failed_names=()

run_stage() {
    local name=$1
    shift
    printf '\n\033[1m== %s\033[0m\n' "$name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names+=("$name")
    fi
}

stage_rust() {
    cargo test --workspace --all-features
}

stage_wasm() {
    [ -d crates/keybound-client ] || return 0
    CHROMEDRIVER=/usr/bin/chromedriver cargo test -p keybound-client --target wasm32-unknown-unknown
}

stage_sdk() {
    [ -x js/build.sh ] || return 0
    js/build.sh
    (cd js && npx tsc --noEmit -p .)
}

stage_interop() {
    [ -f tests/interop/package.json ] || return 0
    cargo build -q -p keybound-cli -p keybound-example-minimal
    (cd tests/interop && KEYBOUND_BIN="$ROOT/target/debug/keybound" \
        KEYBOUND_MINIMAL_BIN="$ROOT/target/debug/keybound-minimal" node --test)
}

# Runs `node --test` in a directory and fails when any test was skipped: the browser
# suites skip themselves when the SDK or a server is missing, which here means a build
# step went wrong.
node_tests_no_skips() {
    local dir=$1 log
    log=$(mktemp)
    (cd "$dir" && node --test --test-concurrency=1) 2>&1 | tee "$log"
    local status=${PIPESTATUS[0]}
    if [ "$status" -eq 0 ] && grep -Eq '^# skipped [1-9]' "$log"; then
        echo "$dir: some tests were skipped; every browser test must run here" >&2
        status=1
    fi
    rm -f "$log"
    return "$status"
}

stage_browser() {
    [ -f tests/browser/package.json ] || return 0
    cargo build -q -p keybound-cli -p keybound-example-minimal
    KEYBOUND_BIN="$ROOT/target/debug/keybound" KEYBOUND_MINIMAL_BIN="$ROOT/target/debug/keybound-minimal" \
        node_tests_no_skips tests/browser
}

stage_demo() {
    [ -f examples/demo/test/package.json ] || return 0
    node_tests_no_skips examples/demo/test
}

for stage in "${stages[@]}"; do
    run_stage "$stage" "stage_$stage"
done

echo
if [ "$failed" -gt 0 ]; then
    echo "failed stages: ${failed_names[*]}"
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
