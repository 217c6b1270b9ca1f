local ok, cur = pcall(redis.call, 'GET', KEYS[1])
-- ARGV[4] '2': only over a key that holds something (a read's stamp: see `batch::Put`)
if ARGV[4] == '2' and ok and not cur then return 0 end
if ok and cur and not (ARGV[4] == '1' and cur == ARGV[5]) then
  local v = tonumber(string.match(cur, '^{"v":(%d+)'))
  if v and v > tonumber(ARGV[2]) then return 0 end
end
-- a film's empty key: ARGV[6] the catalog version its rows were read at, ARGV[7] when (Unix ms),
-- ARGV[8] the oldest a read may be; KEYS[2] the stamp (see `batch::Empty`)
if ok and not cur and ARGV[6] then
  local t = redis.call('TIME')
  if t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[7]) > tonumber(ARGV[8]) then return 0 end
  if KEYS[2] then
    local sok, s = pcall(redis.call, 'GET', KEYS[2])
    -- no stamp: Redis lost it (and maybe a newer copy with it); nothing tells this read's age
    if sok and not s then return 0 end
    local sv = sok and s and tonumber(string.match(s, '^{"v":(%d+)'))
    if sv and sv > tonumber(ARGV[6]) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
