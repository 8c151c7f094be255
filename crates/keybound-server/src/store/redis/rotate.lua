-- rotate: ARGV[3] id, [4] presented hash, [5] presented generation, [6] presented
-- generation + 1 ('' on overflow), [7] jkt, [8] successor hash, [9] now,
-- [10] grace until, [11] new idle deadline, [12] absolute cap ('' for none).
-- The rule is `decide_rotation` (store/mod.rs), step for step.
local id, presented, pgen, pgen1 = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local jkt, nxt, now_s, grace, idle, cap = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local now = tonumber(now_s)
local r = load(id)
if not r then return {'unknown'} end
if r.state ~= 'active' then return {'not_active', 0, pack(id, r)} end
if expire_if_due(r, now) then
  save(id, r, now)
  return {'not_active', 1, pack(id, r)}
end
if presented == r.cur then
  if pgen ~= r.gen or pgen1 == '' then return {'unknown'} end
  if jkt ~= r.jkt then return {'key_mismatch'} end
  local capped = false
  if cap ~= '' and tonumber(cap) < tonumber(r.abs) then
    r.abs = cap
    capped = true
  end
  r.prev = r.cur
  r.cur = nxt
  r.gen = pgen1
  r.grace = grace
  r.seen = now_s
  r.idle = min_str(idle, r.abs)
  save(id, r, now)
  -- A shorter lifetime must reach other nodes' caches too.
  if capped then publish(id, 'changed') end
  return {'rotated', pack(id, r)}
end
local is_previous = r.prev ~= nil and r.prev == presented and pgen1 ~= '' and pgen1 == r.gen
local in_grace = r.grace ~= nil and now < tonumber(r.grace)
if is_previous and in_grace and jkt == r.jkt then return {'grace_replay', pack(id, r)} end
finish(r, 'revoked', 'refresh_reuse', now_s)
save(id, r, now)
publish(id, 'revoked')
return {'reuse', pack(id, r)}
