-- A hash made now notes when (see the lease module's comment); after `now`.
local function born()
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], 'born', now) end
end
