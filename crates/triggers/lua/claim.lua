-- Claims a schedule's due ticks: a compare-and-set of its next fire time. Of any number of
-- runners that planned from the same next fire time, exactly one gets 1; the others get 0 and
-- fire nothing. The fire is recorded in the same step.
-- KEYS: 1 schedule hash, 2 due (zset), 3 all ids (set), 4 the workflow's ids (set)
-- ARGV: 1 id, 2 expected next ms, 3 new next ms or '', 4 latest tick fired ms or '',
--       5 ticks fired, 6 ticks missed, 7 '1' to delete the schedule (a one-shot)
local next = redis.call('HGET', KEYS[1], 'next')
if next ~= ARGV[2] then
  return 0
end
if ARGV[7] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('SREM', KEYS[4], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], 'next', ARGV[3])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'last', ARGV[4])
end
redis.call('HINCRBY', KEYS[1], 'fires', ARGV[5])
redis.call('HINCRBY', KEYS[1], 'misses', ARGV[6])
return 1
