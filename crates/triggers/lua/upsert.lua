-- Inserts or updates one schedule. Idempotent: the same spec again changes nothing (its next
-- fire time is kept), so every engine instance may register the same definition.
-- KEYS: 1 schedule hash, 2 due (zset id -> next fire ms), 3 all ids (set), 4 the workflow's ids (set)
-- ARGV: 1 id, 2 spec (JSON), 3 first fire ms, 4 now ms
-- Returns 0 unchanged, 1 updated, 2 created.
local current = redis.call('HGET', KEYS[1], 'spec')
if current == ARGV[2] then
  return 0
end
if not current then
  redis.call('HSET', KEYS[1], 'created', ARGV[4], 'fires', 0, 'misses', 0)
end
redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'next', ARGV[3], 'updated', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
if current then
  return 1
end
return 2
