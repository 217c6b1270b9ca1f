local cur = redis.call('HGET', KEYS[1], 'token')
if not cur then
  born()
  redis.call('HSET', KEYS[1], 'token', ARGV[4])
  cur = ARGV[4]
end
if cur ~= ARGV[2] then return {cur, 0} end
redis.call('HSET', KEYS[1], 'lease:' .. ARGV[1], (now + tonumber(ARGV[3])) .. ' ' .. cur)
return {cur, 1}
