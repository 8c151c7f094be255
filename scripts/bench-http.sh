#!/usr/bin/env bash
# keybound's HTTP benchmark (BENCHMARKS.md, "HTTP (axum)"): the same axum handler
# unprotected (GET /plain) and behind the `Session` extractor (GET /protected), loaded
# by wrk over 127.0.0.1 with a fresh DPoP proof per request from a pre-generated pool
# (replay protection on). The server runs on one core (a single-threaded runtime,
# pinned with taskset), wrk on the other, so that the server's CPU time per request is
# measured directly (from /proc) and the verification cost per request is the
# difference between the two routes, next to the raw `verify_strict` cost and the
# in-process `Verifier::verify_headers` cost timed by the same server process.
#
#   scripts/bench-http.sh                 3 rounds of 10 s per route
#   ROUNDS=1 DURATION=5 scripts/bench-http.sh
#
# Knobs: ROUNDS (3), DURATION seconds per run (10), CONNECTIONS (32), POOL proofs per
# round (100000), SERVER_CPU (1), CLIENT_CPU (0).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
POOL=${POOL:-100000}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}

. scripts/lib/install.sh
kb_install_apt wrk:wrk
cargo build --release --quiet -p keybound-server --example http_bench
bin=target/release/examples/http_bench
lua=scripts/bench/dpop-pool.lua
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(uname -sr)"
echo "wrk: 1 thread, $CONNECTIONS connections, ${DURATION}s per run, pinned to cpu $CLIENT_CPU; server pinned to cpu $SERVER_CPU"
echo
printf '%-5s | %-9s | %9s | %8s | %8s | %11s | %8s\n' round route "req/s" "p50 µs" "p99 µs" "cpu µs/req" "non-2xx"
summary=()
for round in $(seq "$ROUNDS"); do
    taskset -c "$SERVER_CPU" "$bin" 127.0.0.1:0 "$tmp/pool.txt" "$POOL" >"$tmp/server.out.$round" 2>"$tmp/server.err" &
    pid=$!
    for _ in $(seq 600); do
        if [ -s "$tmp/server.out.$round" ]; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then cat "$tmp/server.err" >&2; exit 1; fi
        sleep 0.2
    done
    info=$(head -n1 "$tmp/server.out.$round")
    origin=$(field "$info" origin)
    strict=$(field "$info" verify_strict_cpu_us)
    inproc=$(field "$info" verify_request_cpu_us)
    declare -A cpu rps
    for route in protected plain; do
        before=$(cpu_ticks "$pid")
        out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s \
            -s "$lua" "$origin/$route" -- "$tmp/pool.txt" 1)
        after=$(cpu_ticks "$pid")
        result=$(grep '^RESULT' <<<"$out")
        requests=$(kv "$result" requests)
        rps[$route]=$(kv "$result" rps)
        cpu[$route]=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
        printf '%-5s | %-9s | %9s | %8s | %8s | %11s | %8s\n' "$round" "$route" "${rps[$route]}" \
            "$(kv "$result" p50_us)" "$(kv "$result" p99_us)" "${cpu[$route]}" "$(kv "$result" non_2xx)"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    derived=$(awk -v a="${rps[plain]}" -v b="${rps[protected]}" 'BEGIN { printf "%.1f", (1 / b - 1 / a) * 1e6 }')
    cpu_diff=$(awk -v a="${cpu[plain]}" -v b="${cpu[protected]}" 'BEGIN { printf "%.1f", b - a }')
    ratio=$(awk -v a="${rps[plain]}" -v b="${rps[protected]}" 'BEGIN { printf "%.2f", b / a }')
    summary+=("$(printf '%-5s | %8s | %16s | %16s | %15s | %17s' "$round" "$ratio" "$cpu_diff" "$derived" "$strict" "$inproc")")
done
echo
printf '%-5s | %8s | %16s | %16s | %15s | %17s\n' round "rps ratio" "Δcpu µs/req" "Δ(1/rps) µs" "verify_strict µs" "verify_headers µs"
printf '%s\n' "${summary[@]}"
echo
echo "Δcpu: server CPU time per request, protected minus plain (from /proc, whole process)."
echo "Δ(1/rps): the same derived from throughput alone (inflated when the core is shared)."
echo "verify_strict, verify_headers: CPU time per call in the server process, same round."
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
