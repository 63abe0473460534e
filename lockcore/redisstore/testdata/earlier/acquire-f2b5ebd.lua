-- acquire.lua: take a lock for a lease, atomically (one account, one slot).
--
-- KEYS[1] lock hash     <prefix>{a:ID}:lock:<name>
--                       fields: lease, fence, expires (ms), ttl (ms), metadata (absent = none)
-- KEYS[2] fence counter <prefix>{a:ID}:fence   (INCR only; never expires, never deleted)
-- KEYS[3] held zset     <prefix>{a:ID}:held    (member name, score expires ms)
-- KEYS[4] token mirror  <prefix>{a:ID}:tok:<sha256 hex>  OPTIONAL: when given,
--                       the call is made with that bearer token and is done
--                       only if the key exists (the token is the account's)
-- ARGV[1] lock name (the zset member)
-- ARGV[2] lease id
-- ARGV[3] ttl in milliseconds (positive integer)
-- ARGV[4] max held locks of the account (integer >= 1)
-- ARGV[5] "1" if ARGV[6] is metadata to store, "0" for none (new lease) / keep (retry)
-- ARGV[6] metadata (ignored unless ARGV[5] == "1")
--
-- Returns an array, first element a status:
--   {1, lease, fence, expires, ttl, hasmeta, metadata, now}  acquired (new or idempotent retry)
--   {0, lease, fence, expires, ttl, hasmeta, metadata, now}  held by another lease (the holder's)
--   {2, now}                                                 free, but the account is at its quota
--   {-1}                                                     token not proved: KEYS[4] was given
--                                                            and does not exist; nothing changed
-- hasmeta is 1 when metadata is present, else 0 (metadata is then "").
-- Times are milliseconds of the server clock (TIME); a lease is held while now < expires.
-- With three KEYS the script never checks a token and never returns -1.

if KEYS[4] and redis.call('EXISTS', KEYS[4]) ~= 1 then
  return {-1}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])

local cur = redis.call('HMGET', KEYS[1], 'lease', 'fence', 'expires', 'ttl', 'metadata')
if cur[1] and tonumber(cur[3]) > now then
  if cur[1] ~= ARGV[2] then
    local hasmeta = 0
    local meta = ''
    if cur[5] then hasmeta = 1; meta = cur[5] end
    return {0, cur[1], tonumber(cur[2]), tonumber(cur[3]), tonumber(cur[4]), hasmeta, meta, now}
  end
  -- Idempotent retry of the current lease: same fence, expiry moved.
  local expires = now + ttl
  redis.call('HSET', KEYS[1], 'expires', expires, 'ttl', ttl)
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'metadata', ARGV[6])
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZADD', KEYS[3], expires, ARGV[1])
  local meta = redis.call('HGET', KEYS[1], 'metadata')
  local hasmeta = 0
  if meta then hasmeta = 1 else meta = '' end
  return {1, ARGV[2], tonumber(cur[2]), expires, ttl, hasmeta, meta, now}
end

-- The lock is free. Quota: count the account's unexpired locks. The zset
-- may still hold expired entries, which only inflate ZCARD, so the lazy
-- cleanup is needed only when ZCARD reaches the quota (this also keeps the
-- zset near the quota in size).
local max = tonumber(ARGV[4])
if redis.call('ZCARD', KEYS[3]) >= max then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  local held = redis.call('ZCARD', KEYS[3])
  if redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    held = held - 1
  end
  if held >= max then
    return {2, now}
  end
end

local fence = redis.call('INCR', KEYS[2])
local expires = now + ttl
if cur[1] then
  redis.call('DEL', KEYS[1]) -- expired by our clock, not yet by Redis
end
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'lease', ARGV[2], 'fence', fence, 'expires', expires, 'ttl', ttl, 'metadata', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'lease', ARGV[2], 'fence', fence, 'expires', expires, 'ttl', ttl)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[3], expires, ARGV[1])
local hasmeta = 0
local meta = ''
if ARGV[5] == '1' then hasmeta = 1; meta = ARGV[6] end
return {1, ARGV[2], fence, expires, ttl, hasmeta, meta, now}
