-- Promotes due delayed jobs, then hands out up to `max` ready jobs under a lease, with their
-- inputs (the live parents' outputs) in the same reply.
-- KEYS: ready, delayed, leases, events
-- ARGV: SP, max, lease ms, events cap, request nonce
-- A replay of the same call (the client re-sends it after losing the reply) returns the jobs
-- the first run handed out, kept for a few seconds under P:{0}:claim:<nonce>, instead of
-- handing out more and leaving the first ones to stall.
-- Reply: { jobs, next_due_ms_or_-1 }, each job
--   { E, i, token, attempt, declared parents, previous JSON object, initial JSON or '',
--     delay elapsed 0/1, wf, ver, par, dep, node id JSON, ready at ms or '' }
local SP, max, lease, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local memo = SP .. 'claim:' .. ARGV[5]
local replay = redis.call('GET', memo)
if replay then
  return { cjson.decode(replay), -1 }
end
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  redis.call('ZREM', KEYS[2], unpack(due))
  redis.call('RPUSH', KEYS[1], unpack(due))
end
local function next_due()
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #nxt == 0 then
    return -1
  end
  return tonumber(nxt[2])
end
local popped = redis.call('LPOP', KEYS[1], max)
if not popped then
  return { {}, next_due() }
end
local out, leases = {}, {}
for _, m in ipairs(popped) do
  -- 'tick' entries only wake blocked workers.
  local sep = string.find(m, '|', 1, true)
  local E, i, X = '', 0, ''
  if sep then
    E, i = string.sub(m, 1, sep - 1), tonumber(string.sub(m, sep + 1))
    X = SP .. 'x:' .. E
  end
  local f = { false }
  if sep then
    f = redis.call('HMGET', X, 'st', 's:' .. i, 'p:' .. i, 'tok', 'na:' .. i, 'de:' .. i,
      'wfj', 'id:' .. i, 'ts:' .. i, 'wf', 'ver', 'par', 'dep', 'ra:' .. i)
  end
  if f[1] and f[2] == 'R' then
    if f[1] ~= 'running' then
      redis.call('HSET', X, 's:' .. i, 'D', 'ns:' .. i, 'pending')
    else
      local parents = split(f[3])
      local prev = {}
      if #parents > 0 then
        local fields = {}
        for _, p in ipairs(parents) do
          fields[#fields + 1] = 's:' .. p
          fields[#fields + 1] = 'rt:' .. p
          fields[#fields + 1] = 'o:' .. p
          fields[#fields + 1] = 'id:' .. p
        end
        local v = hmget_all(X, fields)
        for j = 1, #parents do
          local s, rt, o, pid = v[j * 4 - 3], v[j * 4 - 2], v[j * 4 - 1], v[j * 4]
          if (s == 'C' and (not rt or contains(rt, i))) or s == 'K' then
            prev[#prev + 1] = pid .. ':' .. (o or 'null')
          end
        end
      end
      local init = ''
      if #parents == 0 then
        init = redis.call('HGET', X, 'init')
      end
      local tok = (tonumber(f[4]) or 0) + 1
      local att = f[5] or '1'
      local H = { 'tok', istr(tok), 't:' .. i, istr(tok), 'a:' .. i, att, 'ns:' .. i, 'running' }
      if not f[9] then
        H[#H + 1] = 'ts:' .. i
        H[#H + 1] = istr(now)
      end
      redis.call('HSET', X, unpack(H))
      leases[#leases + 1] = now + lease
      leases[#leases + 1] = m
      node_event(E, f[7], f[8], 'running', ',"attempt":' .. att, now)
      out[#out + 1] = { E, i, tok, tonumber(att), #parents, '{' .. table.concat(prev, ',') .. '}',
        init, f[6] == '1' and 1 or 0, f[10], f[11], f[12] or '', f[13], f[8], f[14] or '' }
    end
  end
end
if #leases > 0 then
  redis.call('ZADD', KEYS[3], unpack(leases))
end
flush_events(KEYS[4], cap)
if #out == 0 then
  return { out, next_due() }
end
redis.call('SET', memo, cjson.encode(out), 'PX', math.min(lease, 5000))
return { out, -1 }
