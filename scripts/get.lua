-- get.lua: read one lock against the server clock (read-only).
--
-- KEYS[1] lock hash  <prefix>{a:ID}:lock:<name>  (fields as in acquire.lua)
--
-- Returns {1, lease, fence, expires, ttl, hasmeta, metadata, now} when an
-- unexpired lease holds the lock, else {0, now}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local cur = redis.call('HMGET', KEYS[1], 'lease', 'fence', 'expires', 'ttl', 'metadata')
if not cur[1] or tonumber(cur[3]) <= now then
  return {0, now}
end
local hasmeta = 0
local meta = ''
if cur[5] then hasmeta = 1; meta = cur[5] end
return {1, cur[1], tonumber(cur[2]), tonumber(cur[3]), tonumber(cur[4]), hasmeta, meta, now}
