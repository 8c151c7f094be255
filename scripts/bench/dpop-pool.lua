-- wrk script for keybound's HTTP benchmark (scripts/bench-http.sh): every request
-- carries the access token and the next proof of a pre-generated pool, so each proof
-- (and its jti) is used once and replay protection stays on.
--
--   wrk -t THREADS -s scripts/bench/dpop-pool.lua URL -- POOL_FILE THREADS
--
-- POOL_FILE holds the access token on its first line, then one proof per line. Thread
-- k of n takes every n-th proof from the k-th. A thread that runs out starts over; the
-- server refuses those replays (401), counted in `non_2xx` below.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local nthreads = tonumber(args[2] or "1")
  local file = assert(io.open(args[1], "r"), "cannot open the proof pool")
  authorization = "DPoP " .. file:read("*l")
  proofs = {}
  local n = 0
  for line in file:lines() do
    if n % nthreads == id then
      proofs[#proofs + 1] = line
    end
    n = n + 1
  end
  file:close()
  i = 0
end

function request()
  i = i + 1
  local proof = proofs[(i - 1) % #proofs + 1]
  return wrk.format("GET", nil, { ["Authorization"] = authorization, ["DPoP"] = proof })
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d non_2xx=%d socket_errors=%d\n",
    summary.requests,
    summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50),
    latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  ))
end
