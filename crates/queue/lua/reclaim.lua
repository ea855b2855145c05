-- Stalled-job recovery: jobs whose lease expired are claimable again; a job that stalled more
-- than `max stalled` times fails with the reason "stalled" and goes to the dead-letter queue.
-- Also fails executions whose deadline has passed, and tells workers to cancel their executors.
-- KEYS: ready, leases, events, deadlines
-- ARGV: SP, max stalled, retention ms, events bounds (flush_events), cancel channel
-- Reply: number of jobs reclaimed or failed
local SP, maxst = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, m in ipairs(expired) do
  redis.call('ZREM', KEYS[2], m)
  local sep = string.find(m, '|', 1, true)
  local E, i = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  local X = SP .. 'x:' .. E
  local f = redis.call('HMGET', X, 'st', 's:' .. i, 'g', 'un', 'wfj', 'id:' .. i, 'a:' .. i,
    'sc:' .. i)
  if f[1] and f[2] == 'R' and f[1] ~= 'running' and f[1] ~= 'paused' then
    -- The execution ended while the job was out: hold it, no dead letter.
    redis.call('HSET', X, 't:' .. i, '', 's:' .. i, 'D', 'ns:' .. i, 'pending')
  elseif f[1] and f[2] == 'R' then
    local stalls = (tonumber(f[8]) or 0) + 1
    if stalls > maxst then
      -- A stalled node fails for good: nothing propagates, so no children are needed.
      local c = { X = X, E = E, SP = SP, G = f[3], st = f[1], un = tonumber(f[4]), wfj = f[5],
        now = now, ready = KEYS[1], children = '', H = { 'sc:' .. i, istr(stalls) }, finished = '',
        reason = 'stalled' }
      local msg = 'stalled: the lease expired ' .. stalls .. ' times (worker died or hung)'
      settle(c, i, 'fail', nil, nil, msg, f[7] or '1', f[6])
      write_back(c, tonumber(ARGV[3]))
    else
      redis.call('HSET', X, 'sc:' .. i, istr(stalls), 't:' .. i, '', 'ns:' .. i, 'pending',
        'na:' .. i, istr(tonumber(f[7] or '1') + 1), 'ra:' .. i, istr(now))
      redis.call('LPUSH', KEYS[1], m)
    end
  end
end
local late = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 1000)
for _, E in ipairs(late) do
  redis.call('ZREM', KEYS[4], E)
  local X = SP .. 'x:' .. E
  local f = redis.call('HMGET', X, 'st', 'wfj')
  if f[1] == 'running' or f[1] == 'paused' then
    local msg = 'execution deadline exceeded'
    redis.call('HSET', X, 'st', 'failed', 'err', msg, 'fa', istr(now))
    redis.call('PEXPIRE', X, tonumber(ARGV[3]))
    wf_event(X, E, f[2], 'failed', msg, now)
    redis.call('PUBLISH', ARGV[5], E)
  end
end
flush_ready(KEYS[1])
flush_events(KEYS[3], ARGV[4])
return #expired + #late
