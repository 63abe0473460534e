-- rotate.lua: retire an old token for a rotation, safely under client retries.
--
-- RotateToken first sets the new token key (another Cluster slot), then runs
-- this on the old one. Instead of deleting the old key it overwrites it with
-- a short-lived tombstone naming the new token, so a retried call (after a
-- lost reply) recognises its own rotation, while a concurrent rotation of
-- the same token sees someone else's tombstone and loses. Lookups treat a
-- tombstone as an unknown token.
--
-- KEYS[1] old token key  <prefix>token:<sha256 hex>  (value: account id or tombstone)
-- ARGV[1] account id the old token maps to
-- ARGV[2] tombstone: "rotated:" followed by the new token's sha256 hex
-- ARGV[3] tombstone lifetime in milliseconds
--
-- Returns 1 when this rotation retired the old token (now or in an earlier
-- attempt of the same call), 0 when the old token is unknown, revoked, or
-- retired by another rotation.

local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if v == ARGV[2] then
  return 1
end
return 0
