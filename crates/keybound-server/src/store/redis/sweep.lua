-- sweep: ARGV[3] now, [4] purge sessions that ended at or before this, [5] at most
-- this many sessions. Returns {done, kind, record, kind, record, ...}: expiries first,
-- then purges; a session both expired and purged is reported twice, in that order.
local now_s, purge_before, limit = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now = tonumber(now_s)
local out = {0}
local budget = limit
local full = false
if budget > 0 then
  local due = redis.call('ZRANGEBYSCORE', ACTIVE, '-inf', now_s, 'LIMIT', 0, budget)
  if #due == budget then full = true end
  for _, id in ipairs(due) do
    local r = load(id)
    if not r then
      -- Gone from Redis by its TTL (no sweeper ran for a long time): just unindex.
      redis.call('ZREM', ACTIVE, id)
    elseif r.state ~= 'active' then
      save(id, r, now)
    elseif expire_if_due(r, now) then
      budget = budget - 1
      out[#out + 1] = 'expired'
      out[#out + 1] = pack(id, r)
      if tonumber(r.ended) <= purge_before then
        purge(id, r)
        out[#out + 1] = 'purged'
        out[#out + 1] = pack(id, r)
      else
        save(id, r, now)
      end
    else
      -- The index lagged behind the record: re-index at the real deadline.
      save(id, r, now)
    end
  end
end
if budget > 0 then
  local old = redis.call('ZRANGEBYSCORE', ENDED, '-inf', ARGV[4], 'LIMIT', 0, budget)
  if #old == budget then full = true end
  for _, id in ipairs(old) do
    local r = load(id)
    if not r then
      redis.call('ZREM', ENDED, id)
    elseif r.state == 'active' then
      save(id, r, now)
    else
      budget = budget - 1
      purge(id, r)
      out[#out + 1] = 'purged'
      out[#out + 1] = pack(id, r)
    end
  end
else
  full = true
end
if not full then out[1] = 1 end
return out
