-- Gives a claimed job back (graceful shutdown): claimable again at once, attempt not counted.
-- KEYS: ready, leases; ARGV: SP, E, i, token
local X = ARGV[1] .. 'x:' .. ARGV[2]
local i = ARGV[3]
local f = redis.call('HMGET', X, 't:' .. i, 's:' .. i)
if f[1] ~= ARGV[4] or f[2] ~= 'R' then
  return 0
end
local member = ARGV[2] .. '|' .. i
redis.call('ZREM', KEYS[2], member)
redis.call('HSET', X, 't:' .. i, '', 'ns:' .. i, 'pending', 'ra:' .. i, istr(now_ms()))
redis.call('LPUSH', KEYS[1], member)
return 1
