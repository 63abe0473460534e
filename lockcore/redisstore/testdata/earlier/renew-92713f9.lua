-- renew.lua: move the expiry of the current lease, if the lease id holds the lock now.
--
-- KEYS[1] lock hash  <prefix>{a:ID}:lock:<name>  (fields as in acquire.lua)
-- KEYS[2] held zset  <prefix>{a:ID}:held (its PTTL kept at least the lease's, as in acquire.lua)
-- KEYS[3] token mirror <prefix>{a:ID}:tok:<sha256 hex>  OPTIONAL: when given,
--                      the call is made with that bearer token and is done
--                      only if the key exists (the token is the account's)
-- KEYS[4] revocation mark <prefix>{a:ID}:revoked:<sha256 hex>  OPTIONAL, only
--                      with KEYS[3] and ARGV[4]: the caller has just read the
--                      token key and found it names this account, so the call is
--                      done without the mirror too if this mark (set by a
--                      revocation or rotation of the token) does not exist and
--                      now is before the deadline ARGV[4]
-- ARGV[1] lock name (the zset member)
-- ARGV[2] lease id
-- ARGV[3] ttl in milliseconds (positive integer)
-- ARGV[4] deadline for KEYS[4] (ms, server clock; only with KEYS[4])
--
-- Returns {1, fence, expires, ttl, hasmeta, metadata, now} when renewed, or
-- {0, now} when the lease does not hold the lock (expired, released,
-- replaced or unknown); an expired lease is never revived. Returns {-1, now}
-- (token not proved, nothing changed) when KEYS[3] is given, does not exist
-- and KEYS[4] does not vouch for the token; with two KEYS the script never
-- checks a token and never returns -1.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if KEYS[3] and redis.call('EXISTS', KEYS[3]) ~= 1 then
  if not KEYS[4] or redis.call('EXISTS', KEYS[4]) == 1 or now >= tonumber(ARGV[4]) then
    return {-1, now}
  end
end

local ttl = tonumber(ARGV[3])

local cur = redis.call('HMGET', KEYS[1], 'lease', 'fence', 'expires', 'metadata')
if not cur[1] or cur[1] ~= ARGV[2] or tonumber(cur[3]) <= now then
  return {0, now}
end
local expires = now + ttl
redis.call('HSET', KEYS[1], 'expires', expires, 'ttl', ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], expires, ARGV[1])
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
local hasmeta = 0
local meta = ''
if cur[4] then hasmeta = 1; meta = cur[4] end
return {1, tonumber(cur[2]), expires, ttl, hasmeta, meta, now}
