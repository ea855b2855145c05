-- Registers a definition: an unchanged definition keeps its version, a changed one gets the
-- next. Versions are numbered here, so every process sharing the prefix agrees on them.
-- KEYS: the workflow's hash (P:wf:{id})
-- ARGV: definition key prefix (P:def:{id}:), definition JSON, now ms
-- Reply: the version
local cur = redis.call('HMGET', KEYS[1], 'latest', 'json')
if cur[1] and cur[2] == ARGV[2] then
  return tonumber(cur[1])
end
local v = (tonumber(cur[1]) or 0) + 1
redis.call('SET', ARGV[1] .. v, ARGV[2])
redis.call('HSET', KEYS[1], 'latest', v, 'json', ARGV[2], 'at:' .. v, ARGV[3])
return v
