-- Records one proof id in the replay set, bounded in size.
-- KEYS[1]: the sorted set {prefix}replay (member: the proof's key, score: its expiry)
-- ARGV[1]: member, ARGV[2]: expiry (ms), ARGV[3]: now (ms), ARGV[4]: capacity
-- Returns 1: fresh (recorded), 0: a replay (live entry), -1: full (nothing recorded).
local set, member = KEYS[1], ARGV[1]
local expires, now, capacity = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local score = redis.call('ZSCORE', set, member)
if score and tonumber(score) > now then
  return 0
end
if not score and redis.call('ZCARD', set) >= capacity then
  -- Full: forget what has expired, never a live entry.
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  if redis.call('ZCARD', set) >= capacity then
    return -1
  end
end
redis.call('ZADD', set, expires, member)
return 1
