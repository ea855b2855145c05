-- Removes one schedule and its index entries.
-- KEYS: 1 schedule hash, 2 due (zset), 3 all ids (set), 4 the workflow's ids (set)
-- ARGV: 1 id
-- Returns 1 when it existed.
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
return existed
