-- keybound session store: shared helpers, prepended to every script.
-- ARGV[1]: key prefix; ARGV[2]: seconds a session is kept after its end (retention +
-- margin). Script arguments proper start at ARGV[3].
--
-- A session is a hash at <prefix>s:<id>; <prefix>u:<user> is the set of a user's
-- session ids; <prefix>active orders active sessions by deadline, <prefix>ended
-- orders terminal ones by end time; terminal transitions are published on
-- <prefix>events. Every key carries a TTL: the session's end plus the retention.
-- Numbers are decimal strings; times and generations stay below 2^53, where Lua's
-- doubles are exact.
local P = ARGV[1]
local KEEP = tonumber(ARGV[2])
local ACTIVE = P .. 'active'
local ENDED = P .. 'ended'
local CHANNEL = P .. 'events'
local FIELDS = {'user', 'jkt', 'label', 'ua', 'created', 'seen', 'idle', 'abs', 'gen',
  'cur', 'prev', 'grace', 'state', 'reason', 'ended', 'bind'}

local function skey(id) return P .. 's:' .. id end
local function ukey(user) return P .. 'u:' .. user end
-- The user's fence: moved by end_user_sessions, checked by create.
local function fkey(user) return P .. 'f:' .. user end

local function load(id)
  local flat = redis.call('HGETALL', skey(id))
  if #flat == 0 then return nil end
  local r = {}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  return r
end

-- The record as field/value pairs, the id first.
local function pack(id, r)
  local out = {'id', id}
  for _, f in ipairs(FIELDS) do
    if r[f] then
      out[#out + 1] = f
      out[#out + 1] = r[f]
    end
  end
  return out
end

-- The smaller of two decimal strings, as written.
local function min_str(a, b)
  if tonumber(a) <= tonumber(b) then return a end
  return b
end

local function deadline(r) return math.min(tonumber(r.idle), tonumber(r.abs)) end

-- Writes the record, its indexes and its TTL. `now` is the caller's time.
local function save(id, r, now)
  local key = skey(id)
  local args = {}
  for _, f in ipairs(FIELDS) do
    if r[f] then
      args[#args + 1] = f
      args[#args + 1] = r[f]
    end
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(args))
  local ttl
  if r.state == 'active' then
    local d = deadline(r)
    redis.call('ZADD', ACTIVE, d, id)
    redis.call('ZREM', ENDED, id)
    ttl = d + KEEP - now
  else
    redis.call('ZREM', ACTIVE, id)
    redis.call('ZADD', ENDED, r.ended, id)
    ttl = tonumber(r.ended) + KEEP - now
  end
  ttl = math.max(1, math.floor(ttl))
  redis.call('EXPIRE', key, ttl)
  -- The user's index lives as long as the longest-lived of their sessions.
  local user = ukey(r.user)
  redis.call('SADD', user, id)
  if redis.call('TTL', user) < ttl then redis.call('EXPIRE', user, ttl) end
end

local function finish(r, state, reason, at)
  r.state = state
  r.reason = reason
  r.ended = at
end

-- Makes a passed deadline durable; returns whether it did.
local function expire_if_due(r, now)
  if r.state ~= 'active' or now < deadline(r) then return false end
  local reason = 'idle_timeout'
  if r.bind == 'dbsc_pending' then
    reason = 'dbsc_registration_timeout'
  elseif tonumber(r.abs) <= tonumber(r.idle) then
    reason = 'absolute_lifetime'
  end
  finish(r, 'expired', reason, min_str(r.idle, r.abs))
  return true
end

-- Tells every node to drop what it caches about the session.
local function publish(id, event)
  redis.call('PUBLISH', CHANNEL, cjson.encode({v = 1, event = event, session_id = id}))
end

local function purge(id, r)
  redis.call('DEL', skey(id))
  redis.call('ZREM', ACTIVE, id)
  redis.call('ZREM', ENDED, id)
  redis.call('SREM', ukey(r.user), id)
end
