-- revoke.lua: forget a token unless it is unknown or a rotation tombstone.
--
-- KEYS[1] token key  <prefix>token:<sha256 hex>  (value: account id, or a
--                    "rotated:..." tombstone left by rotate.lua)
-- ARGV    none
--
-- Returns 1 when a live token was deleted, 0 when there was none.

local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 8) == 'rotated:' then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
