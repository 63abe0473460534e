-- list.lua: an atomic snapshot of an account's unexpired leases.
--
-- The caller passes the lock keys of the names it believes are held; the
-- script checks that belief against the held zset and answers "retry" with
-- the right names when it was wrong, so every key is still declared in KEYS.
--
-- KEYS[1]      held zset  <prefix>{a:ID}:held
-- KEYS[2..n+1] lock hashes <prefix>{a:ID}:lock:<name> for ARGV[1..n]
-- ARGV[1..n]   the lock names of KEYS[2..n+1], in the same order
--
-- Returns {0, name...} (retry: call again with exactly these names) when the
-- zset holds an unexpired name that is not in ARGV; otherwise {1, now,
-- then for each held lock: name, lease, fence, expires, ttl, hasmeta, metadata}.
-- Expired zset entries are removed at the end (lazy cleanup), after the
-- last read: the removal deletes a zset left with expired entries only, and
-- on a Redis Cluster slot that is being migrated a script may not touch a
-- key it has deleted (Redis refuses the command with "Script attempted to
-- access a non local key in a cluster node", as the key now looks moved).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Unexpired entries: scores are whole milliseconds, so above now is from now + 1.
local names = redis.call('ZRANGEBYSCORE', KEYS[1], now + 1, '+inf')
local given = {}
for i = 1, #ARGV do given[ARGV[i]] = i end
for _, n in ipairs(names) do
  if not given[n] then
    local r = {0}
    for _, m in ipairs(names) do r[#r + 1] = m end
    return r
  end
end

local out = {1, now}
for i = 1, #ARGV do
  local cur = redis.call('HMGET', KEYS[i + 1], 'lease', 'fence', 'expires', 'ttl', 'metadata')
  if cur[1] and tonumber(cur[3]) > now then
    local hasmeta = 0
    local meta = ''
    if cur[5] then hasmeta = 1; meta = cur[5] end
    out[#out + 1] = ARGV[i]
    out[#out + 1] = cur[1]
    out[#out + 1] = tonumber(cur[2])
    out[#out + 1] = tonumber(cur[3])
    out[#out + 1] = tonumber(cur[4])
    out[#out + 1] = hasmeta
    out[#out + 1] = meta
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return out
