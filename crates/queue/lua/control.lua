-- Pause, resume or cancel one execution. Looks at that execution's own nodes only.
-- KEYS: ready, events
-- ARGV: SP, E, action (pause|resume|cancel), events bounds (flush_events), retention ms,
--       cancel channel
-- Reply: { 'ok', status } | { 'denied', status } | { 'missing' }
local SP, E, action, trim = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local X = SP .. 'x:' .. E
local f = redis.call('HMGET', X, 'st', 'n', 'wfj')
local st = f[1]
if not st then
  return { 'missing' }
end
local now = now_ms()
if action == 'pause' then
  if st == 'paused' then
    return { 'ok', st }
  end
  if st ~= 'running' then
    return { 'denied', st }
  end
  redis.call('HSET', X, 'st', 'paused')
  wf_event(X, E, f[3], 'paused', nil, now)
  flush_events(KEYS[2], trim)
  return { 'ok', 'paused' }
elseif action == 'resume' then
  if st == 'running' then
    return { 'ok', st }
  end
  if st ~= 'paused' then
    return { 'denied', st }
  end
  local fields = {}
  for i = 0, tonumber(f[2]) - 1 do
    fields[#fields + 1] = 's:' .. i
  end
  local states = hmget_all(X, fields)
  local H, push = { 'st', 'running' }, {}
  for j, s in ipairs(states) do
    if s == 'D' then
      H[#H + 1] = 's:' .. (j - 1)
      H[#H + 1] = 'R'
      H[#H + 1] = 'ra:' .. (j - 1)
      H[#H + 1] = istr(now)
      push[#push + 1] = E .. '|' .. (j - 1)
    end
  end
  hset_all(X, H)
  if #push > 0 then
    push_all('RPUSH', KEYS[1], push)
  end
  wf_event(X, E, f[3], 'resumed', nil, now)
  flush_events(KEYS[2], trim)
  return { 'ok', 'running' }
else
  if st == 'cancelled' then
    return { 'ok', st }
  end
  if st ~= 'running' and st ~= 'paused' then
    return { 'denied', st }
  end
  redis.call('HSET', X, 'st', 'cancelled', 'fa', istr(now))
  redis.call('PEXPIRE', X, tonumber(ARGV[5]))
  wf_event(X, E, f[3], 'cancelled', nil, now)
  flush_events(KEYS[2], trim)
  redis.call('PUBLISH', ARGV[6], E)
  return { 'ok', 'cancelled' }
end
