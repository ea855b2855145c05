-- Extends a lease if the caller still owns it.
-- KEYS: leases; ARGV: SP, E, i, token, lease ms
local X = ARGV[1] .. 'x:' .. ARGV[2]
if redis.call('HGET', X, 't:' .. ARGV[3]) ~= ARGV[4] then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now_ms() + tonumber(ARGV[5]), ARGV[2] .. '|' .. ARGV[3])
return 1
