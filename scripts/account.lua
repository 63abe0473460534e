-- account.lua: create an account record if absent, or update its login.
--
-- The index key that maps a GitHub id or an operator login to the account id
-- is claimed first with SET NX by the caller (it may live in another Cluster
-- slot); this script then writes the record, so concurrent callers that
-- found the same id converge on one record.
--
-- KEYS[1] account hash <prefix>{a:ID}:account
--                      fields: login, github_id, created (ms)
-- ARGV[1] login
-- ARGV[2] GitHub user id ("0" for an operator-made account)
-- ARGV[3] "1" to set the login of an existing record to ARGV[1], "0" to keep it
--
-- The account's fencing counter is not made here: acquire.lua makes it
-- (INCR) and keeps it at or above the Redis clock in microseconds, so a
-- record made again after Redis lost the account's slot, counter included,
-- goes on with tokens above every one handed out before.
--
-- Returns {created, login, github_id, created_ms}: created is 1 when this
-- call made the record, else 0; the other fields are the record after the call.

local cur = redis.call('HMGET', KEYS[1], 'login', 'github_id', 'created')
if cur[1] then
  local login = cur[1]
  if ARGV[3] == '1' and login ~= ARGV[1] then
    redis.call('HSET', KEYS[1], 'login', ARGV[1])
    login = ARGV[1]
  end
  return {0, login, cur[2], tonumber(cur[3])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'login', ARGV[1], 'github_id', ARGV[2], 'created', now)
return {1, ARGV[1], ARGV[2], now}
