-- end: ARGV[3] id, [4] '1' when [5] must own the session, [6] state, [7] reason, [8] now.
local id, check_owner, owner, state, reason, now_s = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local now = tonumber(now_s)
local r = load(id)
if not r then return {'not_found'} end
if check_owner == '1' and owner ~= r.user then return {'not_owner'} end
if r.state ~= 'active' then return {'already_ended', pack(id, r)} end
if expire_if_due(r, now) then
  save(id, r, now)
  return {'expired', pack(id, r)}
end
finish(r, state, reason, now_s)
save(id, r, now)
publish(id, state)
return {'ended', pack(id, r)}
