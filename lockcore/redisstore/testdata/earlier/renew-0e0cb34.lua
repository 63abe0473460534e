-- renew.lua: move the expiry of the current lease, if the lease id holds the lock now.
--
-- KEYS[1] lock hash  <prefix>{a:ID}:lock:<name>  (fields as in acquire.lua)
-- KEYS[2] held zset  <prefix>{a:ID}:held
-- ARGV[1] lock name (the zset member)
-- ARGV[2] lease id
-- ARGV[3] ttl in milliseconds (positive integer)
--
-- Returns {1, fence, expires, ttl, hasmeta, metadata, now} when renewed, or
-- {0, now} when the lease does not hold the lock (expired, released,
-- replaced or unknown); an expired lease is never revived.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])

local cur = redis.call('HMGET', KEYS[1], 'lease', 'fence', 'expires', 'metadata')
if not cur[1] or cur[1] ~= ARGV[2] or tonumber(cur[3]) <= now then
  return {0, now}
end
local expires = now + ttl
redis.call('HSET', KEYS[1], 'expires', expires, 'ttl', ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], expires, ARGV[1])
local hasmeta = 0
local meta = ''
if cur[4] then hasmeta = 1; meta = cur[4] end
return {1, tonumber(cur[2]), expires, ttl, hasmeta, meta, now}
