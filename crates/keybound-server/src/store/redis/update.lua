-- replace_tokens, touch and bind_dbsc: ARGV[3] id, [4] jkt ('' for touch and bind: any
-- key), [5] successor hash ('' for touch and bind: keep the tokens), [6] now, [7] new
-- idle deadline, [8] the DBSC binding to set ('' but for bind: the session must wait
-- for its registration), [9] the DBSC key's thumbprint (with [8]), [10] until when the
-- replaced generation is still accepted (with [5]; '' for no grace: then every node is
-- told, so none keeps accepting what the old generation authorised).
local id, jkt, nxt, now_s, idle = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local bind, bind_jkt, grace = ARGV[8], ARGV[9], ARGV[10]
local now = tonumber(now_s)
local r = load(id)
if not r then return {'not_found'} end
if r.state ~= 'active' then return {'not_active', 0, pack(id, r)} end
if expire_if_due(r, now) then
  save(id, r, now)
  return {'not_active', 1, pack(id, r)}
end
if jkt ~= '' and jkt ~= r.jkt then return {'key_mismatch'} end
if bind ~= '' then
  if r.bind ~= 'dbsc_pending' then return {'key_mismatch'} end
  r.bind = bind
  r.jkt = bind_jkt
end
if nxt ~= '' then
  r.prev = r.cur
  r.cur = nxt
  r.gen = string.format('%d', tonumber(r.gen) + 1)
  if grace ~= '' then r.grace = grace else r.grace = nil end
end
r.seen = now_s
r.idle = min_str(idle, r.abs)
save(id, r, now)
if nxt ~= '' and grace == '' then publish(id, 'changed') end
return {'updated', pack(id, r)}
