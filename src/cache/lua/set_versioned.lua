local ok, cur = pcall(redis.call, 'GET', KEYS[1])
if ok and cur and not (ARGV[4] == '1' and cur == ARGV[5]) then
  local v = tonumber(string.match(cur, '^{"v":(%d+)'))
  if v and v > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
