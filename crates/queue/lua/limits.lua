-- Circuit breakers and rate-limit windows shared by every worker. Mirrors
-- spane_core::BreakerState (acquire/record) exactly.
-- KEYS: the breaker hash (P:cb:{key}) or the rate-limit key (P:rl:{key})
-- ARGV: action, then
--   acquire: failure threshold, success threshold, open timeout ms, probe lease ms
--   record:  failure threshold, success threshold, open timeout ms, '1' success | '0' failure
--   rate:    max, per ms
-- Reply: acquire → { 'allow' | 'probe' | 'reject', ms to wait }; record → 1; rate → ms to wait
local action = ARGV[1]
local now = now_ms()
if action == 'rate' then
  -- Slots are spaced evenly, one every per / max ms, so no window of length `per` holds more
  -- than `max`; each call reserves the next free slot and returns how long to wait for it.
  local spacing = tonumber(ARGV[3]) / tonumber(ARGV[2])
  local slot = tonumber(redis.call('GET', KEYS[1])) or now
  if slot < now then
    slot = now
  end
  redis.call('SET', KEYS[1], tostring(slot + spacing), 'PX', math.ceil(slot + spacing - now) + 1000)
  return math.ceil(slot - now)
end

local f = redis.call('HMGET', KEYS[1], 'status', 'failures', 'successes', 'openedAt', 'probeUntil')
local st = f[1] or 'CLOSED'
local failures, successes = tonumber(f[2]) or 0, tonumber(f[3]) or 0
local opened, probe = tonumber(f[4]) or 0, tonumber(f[5]) or 0
local fth, sth, timeout = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local function save()
  redis.call('HSET', KEYS[1], 'status', st, 'failures', failures, 'successes', successes,
    'openedAt', istr(opened), 'probeUntil', istr(probe))
end
local function open()
  st, opened, failures, successes, probe = 'OPEN', now, 0, 0, 0
end

if action == 'acquire' then
  local lease = tonumber(ARGV[5])
  if st == 'CLOSED' then
    return { 'allow', 0 }
  elseif st == 'OPEN' then
    if now < opened + timeout then
      return { 'reject', opened + timeout - now }
    end
    st, successes, probe = 'HALF_OPEN', 0, now + lease
    save()
    return { 'probe', 0 }
  else
    if now < probe then
      return { 'reject', probe - now }
    end
    probe = now + lease
    save()
    return { 'probe', 0 }
  end
end

-- record
local ok = ARGV[5] == '1'
if st == 'CLOSED' then
  if ok then
    failures = 0
  else
    failures = failures + 1
    if failures >= fth then
      open()
    end
  end
elseif st == 'HALF_OPEN' then
  if ok then
    successes, probe = successes + 1, 0
    if successes >= sth then
      st, failures, successes, opened, probe = 'CLOSED', 0, 0, 0, 0
    end
  else
    open()
  end
end
save()
return 1
