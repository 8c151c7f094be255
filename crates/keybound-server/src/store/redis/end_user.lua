-- end_user_sessions: ARGV[3] user, [4] session to leave alone ('' for none), [5] state,
-- [6] reason, [7] now. Moves the user's fence. Returns kind/record pairs for the sessions it changed.
local user, except, state, reason, now_s = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local now = tonumber(now_s)
-- Moving the fence refuses every login that read it before this step.
redis.call('INCR', fkey(user))
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', ukey(user))) do
  if id ~= except then
    local r = load(id)
    if not r then
      redis.call('SREM', ukey(user), id)
    elseif r.user == user and r.state == 'active' then
      if expire_if_due(r, now) then
        save(id, r, now)
        out[#out + 1] = 'expired'
      else
        finish(r, state, reason, now_s)
        save(id, r, now)
        publish(id, state)
        out[#out + 1] = 'ended'
      end
      out[#out + 1] = pack(id, r)
    end
  end
end
return out
