-- Deletes every dead-letter item; their executions stay failed and now expire normally.
-- KEYS: dlq; ARGV: SP, retention ms
local items = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, m in ipairs(items) do
  local sep = string.find(m, '|', 1, true)
  local X = ARGV[1] .. 'x:' .. string.sub(m, 1, sep - 1)
  redis.call('HDEL', X, 'dlq:' .. string.sub(m, sep + 1))
  if redis.call('HGET', X, 'st') == 'failed' then
    redis.call('PEXPIRE', X, tonumber(ARGV[2]))
  end
end
redis.call('DEL', KEYS[1])
return #items
