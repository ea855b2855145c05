-- Records a worker's heartbeat and drops the workers silent for too long.
-- KEYS: the workers sorted set (id by last beat, ms), the beats hash (id -> beat JSON)
-- ARGV: worker id, beat JSON, forget after ms
local now = now_ms()
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 100)
if #old > 0 then
  redis.call('ZREM', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[2], unpack(old))
end
return #old
