if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[1], 'token') == 1 then return 0 end
born()
redis.call('HSET', KEYS[1], 'token', ARGV[1])
return 1
