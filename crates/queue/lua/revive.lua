-- Dead-letter retry: revives failed nodes of one execution with fresh attempts; a failed
-- execution runs again and the nodes dropped after its failure are ready too.
-- KEYS: ready, dlq, events
-- ARGV: SP, E, events bounds (flush_events), node indices...
-- Reply: how many nodes were revived
local SP, E, trim = ARGV[1], ARGV[2], ARGV[3]
local X = SP .. 'x:' .. E
local f = redis.call('HMGET', X, 'st', 'n', 'wfj')
local st = f[1]
if not st or (st ~= 'failed' and st ~= 'running') then
  return 0
end
local now = now_ms()
local H, push, gone = {}, {}, {}
for k = 4, #ARGV do
  local i = ARGV[k]
  if redis.call('HGET', X, 's:' .. i) == 'F' then
    local m = E .. '|' .. i
    -- A fresh run: a sub-workflow node starts a fresh child ('ch:i' unbound).
    for _, v in ipairs({ 's:' .. i, 'R', 'ns:' .. i, 'pending', 'na:' .. i, '1', 'sc:' .. i, '0',
      'ra:' .. i, istr(now), 'ch:' .. i, '' }) do
      H[#H + 1] = v
    end
    gone[#gone + 1] = 'dlq:' .. i
    gone[#gone + 1] = 'tf:' .. i
    redis.call('ZREM', KEYS[2], m)
    push[#push + 1] = m
  end
end
if #push == 0 then
  return 0
end
local revived = #push
local fields = {}
for i = 0, tonumber(f[2]) - 1 do
  fields[#fields + 1] = 's:' .. i
end
local states = hmget_all(X, fields)
for j, s in ipairs(states) do
  if s == 'D' then
    local i = j - 1
    H[#H + 1] = 's:' .. i
    H[#H + 1] = 'R'
    H[#H + 1] = 'ra:' .. i
    H[#H + 1] = istr(now)
    push[#push + 1] = E .. '|' .. i
  end
end
if st == 'failed' then
  H[#H + 1] = 'st'
  H[#H + 1] = 'running'
  gone[#gone + 1] = 'err'
  gone[#gone + 1] = 'fa'
  wf_event(X, E, f[3], 'resumed', nil, now)
end
hset_all(X, H)
redis.call('HDEL', X, unpack(gone))
redis.call('PERSIST', X)
push_all('RPUSH', KEYS[1], push)
flush_events(KEYS[3], trim)
return revived
