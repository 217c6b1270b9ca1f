local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return -1 end
local cur, born = nil, nil
for i = 1, #h, 2 do
  if h[i] == 'token' then cur = h[i + 1] elseif h[i] == 'born' then born = tonumber(h[i + 1]) end
end
local done = 1
if not born or now < born + tonumber(ARGV[2]) then done = 0 end
-- a Redis up for less than a lease may have come back from a snapshot holding the hash as it was
-- then, without the leases granted since: those may still run. The uptime is the difference of
-- two whole-second readings of the clock: Redis may have been up for up to a second less
local up = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
if not up or (up - 1) * 1000 < tonumber(ARGV[2]) then done = 0 end
for i = 1, #h, 2 do
  if string.sub(h[i], 1, 6) == 'lease:' then
    local v = h[i + 1]
    local gap = string.find(v, ' ', 1, true)
    local ends = tonumber(string.sub(v, 1, gap - 1))
    local knows = string.sub(v, gap + 1)
    if ends > now and knows ~= ARGV[1] and knows ~= cur then done = 0 end
    if ends + 60000 < now then redis.call('HDEL', KEYS[1], h[i]) end
  end
end
return done
