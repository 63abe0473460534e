-- account.lua: create an account record if absent, or update its login.
--
-- The index key that maps a GitHub id or an operator login to the account id
-- is claimed first with SET NX by the caller (it may live in another Cluster
-- slot); this script then writes the record, so concurrent callers that
-- found the same id converge on one record.
--
-- KEYS[1] account hash <prefix>{a:ID}:account
--                      fields: login, github_id, created (ms)
-- KEYS[2] fence counter <prefix>{a:ID}:fence (made at 0 with a new record, so
--                      that acquire.lua can tell a lost counter from a new one)
-- ARGV[1] login
-- ARGV[2] GitHub user id ("0" for an operator-made account)
-- ARGV[3] "1" to set the login of an existing record to ARGV[1], "0" to keep it
-- ARGV[4] "1" when the caller found the id under its index key (it did not
--         make it): a record made then replaces one Redis lost with the rest
--         of the account's slot, fencing counter included, so the counter is
--         raised to at least the Redis clock in microseconds, as a restore
--         does; "0" for a new account, whose counter starts at 0 (a new
--         account found by a second caller before its record is made gets
--         "1" too: its tokens then start at the clock, still rising)
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
if ARGV[4] == '1' then
  -- microseconds: about 1.8e15, exact in a Lua number (below 2^53)
  local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if tonumber(redis.call('GET', KEYS[2]) or '0') < floor then
    redis.call('SET', KEYS[2], string.format('%.0f', floor))
  end
else
  -- The counter exists from the start (at 0, so the first token is 1):
  -- acquire.lua takes a missing counter of an account for a lost one.
  redis.call('SET', KEYS[2], '0', 'NX')
end
redis.call('HSET', KEYS[1], 'login', ARGV[1], 'github_id', ARGV[2], 'created', now)
return {1, ARGV[1], ARGV[2], now}
