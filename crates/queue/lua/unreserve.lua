-- Forgets an idempotency key if it still maps to the given execution (its start was refused).
-- KEYS: the key; ARGV: execution id
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
