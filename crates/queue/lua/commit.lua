-- Applies the outcome of one attempt atomically: result, joins, skips, children enqueued, lease
-- released, completion decided, events appended. A stale token is refused.
-- KEYS: ready, delayed, leases, events
-- ARGV: SP, E, i, token, kind (complete|fail|retry|delay), payload (data JSON or error text),
--       next nodes (newline-separated ids, or '*' for all), continueOnFail 0/1, delay ms,
--       consume attempt 0/1, retention ms, events cap, fingerprint of this commit's content
-- Reply: { 'stale' } or { 'applied', finished status or '' }
-- A replay of an applied commit (the client re-sends it after losing the reply) answers what
-- the first run answered: each node remembers the token and content fingerprint of its last
-- applied commit (ct:i, cn:i) and the status that commit decided (cf:i). A different commit
-- with the same token is stale.
local SP, E, i, tok, kind = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local X = SP .. 'x:' .. E
local f = redis.call('HMGET', X, 'st', 's:' .. i, 't:' .. i, 'c:' .. i, 'un', 'wfj', 'id:' .. i,
  'a:' .. i, 'cof:' .. i, 'ct:' .. i, 'cf:' .. i, 'cn:' .. i)
if f[1] and f[10] == tok and f[12] == ARGV[13] then
  return { 'applied', f[11] or '' }
end
if not f[1] or f[3] ~= tok or f[2] ~= 'R' then
  return { 'stale' }
end
local now = now_ms()
local member = E .. '|' .. i
redis.call('ZREM', KEYS[3], member)
local c = { X = X, E = E, SP = SP, st = f[1], un = tonumber(f[5]), wfj = f[6], now = now,
  ready = KEYS[1], children = f[4], H = {}, finished = '' }
local idj, attempt = f[7], f[8] or '1'
local payload = ARGV[6]

if (kind == 'retry' or kind == 'delay') and c.st ~= 'running' and c.st ~= 'paused' then
  -- The execution ended while this attempt ran: start nothing new.
  if kind == 'delay' then
    payload = 'the execution ended before the delay started'
  end
  kind = 'fail'
end

if kind == 'retry' or kind == 'delay' then
  local delay = tonumber(ARGV[9])
  local H = { 't:' .. i, '', 'ns:' .. i, 'delayed', 'ct:' .. i, tok, 'cf:' .. i, '',
    'cn:' .. i, ARGV[13], 'ra:' .. i, istr(now + delay) }
  local extra = ',"nextDelayMs":' .. istr(delay)
  if kind == 'retry' then
    -- A retry asks the rate limiter again.
    H[#H + 1] = 'de:' .. i
    H[#H + 1] = '0'
    if ARGV[10] == '1' then
      H[#H + 1] = 'na:' .. i
      H[#H + 1] = istr(tonumber(attempt) + 1)
    end
    H[#H + 1] = 'e:' .. i
    H[#H + 1] = payload
    extra = ',"error":' .. cjson.encode(payload) .. ',"attempt":' .. attempt .. extra
    node_event(E, c.wfj, idj, 'retrying', extra, now)
  else
    H[#H + 1] = 'de:' .. i
    H[#H + 1] = '1'
    node_event(E, c.wfj, idj, 'delayed', extra, now)
  end
  redis.call('HSET', X, unpack(H))
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  redis.call('ZADD', KEYS[2], now + delay, member)
  if #first == 0 or tonumber(first[2]) > now + delay then
    -- Wake workers blocked on the ready list, so they wait for the new earliest due time.
    redis.call('LPUSH', KEYS[1], 'tick')
  end
  flush_events(KEYS[4], ARGV[12])
  return { 'applied', '' }
end

local routes = nil
if kind == 'complete' and ARGV[7] ~= '*' then
  local children = split(c.children)
  local ids = {}
  if #children > 0 then
    local fields = {}
    for _, ch in ipairs(children) do
      fields[#fields + 1] = 'id:' .. ch
    end
    local v = hmget_all(X, fields)
    for j, ch in ipairs(children) do
      ids[v[j]] = ch
    end
  end
  local chosen = {}
  for name in string.gmatch(ARGV[7], '[^\n]+') do
    local ch = ids[cjson.encode(name)]
    if not ch then
      kind = (f[9] == '1') and 'continue' or 'fail'
      payload = 'node ' .. idj .. ': next_nodes names ' .. cjson.encode(name) ..
        ', which is not one of its outputs'
      break
    end
    chosen[#chosen + 1] = istr(ch)
  end
  if kind == 'complete' then
    routes = table.concat(chosen, ',')
  end
elseif kind == 'fail' and ARGV[8] == '1' then
  kind = 'continue'
end

settle(c, i, kind, routes, payload, payload, attempt, idj)
c.H[#c.H + 1] = 'ct:' .. i
c.H[#c.H + 1] = tok
c.H[#c.H + 1] = 'cf:' .. i
c.H[#c.H + 1] = c.finished
c.H[#c.H + 1] = 'cn:' .. i
c.H[#c.H + 1] = ARGV[13]
write_back(c, tonumber(ARGV[11]))
flush_events(KEYS[4], ARGV[12])
return { 'applied', c.finished }
