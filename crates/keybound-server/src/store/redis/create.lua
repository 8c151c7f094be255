-- create: ARGV[3] id, [4] the fence the login read ('' for no check), [5] the most
-- active sessions the user may have ('' for no limit), [6..] field/value pairs.
-- Returns {'duplicate'} when the id exists, {'fenced'} when the user's fence moved,
-- else {'created', record…} with the records of the sessions revoked for the limit.
local id, fence, max = ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', skey(id)) == 1 then return {'duplicate'} end
local r = {}
for i = 6, #ARGV, 2 do r[ARGV[i]] = ARGV[i + 1] end
if fence ~= '' and (redis.call('GET', fkey(r.user)) or '0') ~= fence then
  return {'fenced'}
end
-- The record's own latest time stands in for `now`.
local now = math.max(tonumber(r.created), tonumber(r.seen), tonumber(r.ended or '0'))
local out = {'created'}
if max ~= '' then
  -- The same rule as `sessions_over_limit`: least recently used, then oldest, then id.
  local active = {}
  for _, sid in ipairs(redis.call('SMEMBERS', ukey(r.user))) do
    local s = load(sid)
    if not s then
      redis.call('SREM', ukey(r.user), sid)
    elseif s.user == r.user and s.state == 'active' and now < deadline(s) then
      active[#active + 1] = {id = sid, r = s, seen = tonumber(s.seen), created = tonumber(s.created)}
    end
  end
  local over = #active - (tonumber(max) - 1)
  if over > 0 then
    table.sort(active, function(a, b)
      if a.seen ~= b.seen then return a.seen < b.seen end
      if a.created ~= b.created then return a.created < b.created end
      return a.id < b.id
    end)
    for i = 1, over do
      local victim = active[i]
      finish(victim.r, 'revoked', 'session_limit', tostring(now))
      save(victim.id, victim.r, now)
      publish(victim.id, 'revoked')
      out[#out + 1] = pack(victim.id, victim.r)
    end
  end
end
save(id, r, now)
return out
