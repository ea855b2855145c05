-- Records the execution started for a tick, when that tick is still the latest fired.
-- KEYS: 1 schedule hash
-- ARGV: 1 tick ms, 2 execution id
if redis.call('HGET', KEYS[1], 'last') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'exec', ARGV[2])
end
return 1
