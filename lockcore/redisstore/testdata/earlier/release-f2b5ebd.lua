-- release.lua: free a lock if the lease id holds it now.
--
-- KEYS[1] lock hash  <prefix>{a:ID}:lock:<name>  (fields as in acquire.lua)
-- KEYS[2] held zset  <prefix>{a:ID}:held
-- KEYS[3] token mirror <prefix>{a:ID}:tok:<sha256 hex>  OPTIONAL: when given,
--                      the call is made with that bearer token and is done
--                      only if the key exists (the token is the account's)
-- ARGV[1] lock name (the zset member)
-- ARGV[2] lease id
--
-- Returns 1 when released (lock hash and zset entry deleted; the fence
-- counter is never touched), 0 when the lease does not hold the lock now,
-- -1 (token not proved, nothing changed) when KEYS[3] is given and does not
-- exist; with two KEYS the script never checks a token and never returns -1.

if KEYS[3] and redis.call('EXISTS', KEYS[3]) ~= 1 then
  return -1
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local cur = redis.call('HMGET', KEYS[1], 'lease', 'expires')
if not cur[1] or cur[1] ~= ARGV[2] or tonumber(cur[2]) <= now then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
