-- create: ARGV[3] id, ARGV[4..] field/value pairs. Returns 1, or 0 when the id exists.
local id = ARGV[3]
if redis.call('EXISTS', skey(id)) == 1 then return 0 end
local r = {}
for i = 4, #ARGV, 2 do r[ARGV[i]] = ARGV[i + 1] end
-- The record's own latest time stands in for `now`.
local now = math.max(tonumber(r.created), tonumber(r.seen), tonumber(r.ended or '0'))
save(id, r, now)
return 1
