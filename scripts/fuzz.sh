#!/usr/bin/env bash
# Runs keybound's fuzz targets (fuzz/, built by cargo fuzz with the nightly toolchain;
# the product itself builds on stable). Installs what is missing first: the nightly
# toolchain and cargo-fuzz. FUZZING.md has the targets, the recorded runs and how to
# reproduce a finding.
#
#   scripts/fuzz.sh                   every target, 60 s each
#   scripts/fuzz.sh all 20            every target, 20 s each (the CI smoke run)
#   scripts/fuzz.sh jwk 600           one target for 10 minutes
#
# The corpus of each target grows in fuzz/corpus/TARGET (seeded from tests/vectors
# through fuzz/seeds); crashes land in fuzz/artifacts/TARGET. FUZZ_RUNS=N stops a
# target after N executions (or at SECONDS, whichever comes first); FUZZ_ARGS adds
# libFuzzer options.
#
# The targets are built with debug assertions (overflow checks) and, by default,
# without a sanitizer: every keybound crate forbids `unsafe`, the findings sought are
# panics, overflows, broken invariants, timeouts and memory blow-ups, and
# AddressSanitizer halves the executions per second. FUZZ_SANITIZER=address turns it
# on (for the dependencies' unsafe code).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

targets_all=(json_strict dpop_proof dpop_roundtrip access_token htu refresh_token jwk cli dbsc settings session_lifecycle sdk_calls)
target=${1:-all}
seconds=${2:-60}
if [ "$target" = all ]; then
    targets=("${targets_all[@]}")
elif printf '%s\n' "${targets_all[@]}" | grep -qx "$target"; then
    targets=("$target")
else
    echo "fuzz.sh: unknown target $target (one of: all ${targets_all[*]})" >&2
    exit 2
fi
case $seconds in '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number" >&2; exit 2 ;; esac

# The nightly toolchain (for fuzzing only) and cargo-fuzz, through keybound's installer.
. scripts/lib/install.sh
kb_require_rust
kb_install_toolchain nightly
kb_install_cargo_tool cargo-fuzz cargo-fuzz

say "writing seed corpora from tests/vectors"
cargo run -q --manifest-path fuzz/Cargo.toml -p keybound-fuzz-seeds -- tests/vectors fuzz/seeds-out

say "building the fuzz targets"
sanitizer=${FUZZ_SANITIZER:-none}
build_opts=(--debug-assertions --sanitizer "$sanitizer")
(cd fuzz && cargo +nightly fuzz build "${build_opts[@]}")

dict_for() {
    case $1 in
        json_strict | dpop_proof | access_token | jwk) echo dict/jose.dict ;;
        htu | dpop_roundtrip) echo dict/url.dict ;;
        settings) echo dict/settings.dict ;;
        cli) echo dict/cli.dict ;;
        dbsc) echo dict/dbsc.dict ;;
        *) ;;
    esac
}

failed=()
for t in "${targets[@]}"; do
    say "$t: ${seconds}s${FUZZ_RUNS:+ or $FUZZ_RUNS executions}"
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds-out/$t"
    opts=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    if [ -n "${FUZZ_RUNS:-}" ]; then opts+=(-runs="$FUZZ_RUNS"); fi
    dict=$(dict_for "$t")
    if [ -n "$dict" ]; then opts+=(-dict="$dict"); fi
    # shellcheck disable=SC2206
    if [ -n "${FUZZ_ARGS:-}" ]; then opts+=($FUZZ_ARGS); fi
    if ! (cd fuzz && cargo +nightly fuzz run "${build_opts[@]}" "$t" "corpus/$t" "seeds-out/$t" -- "${opts[@]}"); then
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
say "all ${#targets[@]} targets ran without a finding"
