-- restore.lua: prepare one account of a Redis restored from a snapshot: raise its
-- fencing counter to a floor (never lower it) and drop its locks.
--
-- KEYS[1] fence counter <prefix>{a:ID}:fence
-- KEYS[2] held zset     <prefix>{a:ID}:held
-- KEYS[3..n] lock hashes <prefix>{a:ID}:lock:<name> to delete (those the caller found)
-- ARGV[1] the floor (positive integer)
--
-- Returns the number of lock hashes deleted.

local floor = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < floor then
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('DEL', KEYS[2])
local n = 0
for i = 3, #KEYS do
  n = n + redis.call('DEL', KEYS[i])
end
return n
