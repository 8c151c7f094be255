-- list_user: ARGV[3] user. Returns the records of the user's sessions; forgets index
-- entries whose session expired from Redis.
local user = ARGV[3]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', ukey(user))) do
  local r = load(id)
  if not r then
    redis.call('SREM', ukey(user), id)
  elseif r.user == user then
    out[#out + 1] = pack(id, r)
  end
end
return out
