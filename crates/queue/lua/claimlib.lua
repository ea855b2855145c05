-- Claiming, shared by claim.lua and commit.lua (which claims the committers' next jobs in the
-- same call). Prepended after lib.lua.

-- The fields a job's reply is built from: the node's own (18), then per parent its status,
-- routes and output. `parents`: the node's parents when the ready entry carried them (one
-- HMGET then), nil to read them from the graph first.
-- The 17th, 'in:i', is a re-run's changed input for the node (rarely set); the 18th, 'c:i',
-- counts the node's claims.
local OWN = 18

local function job_fields(X, i, parents)
  local fields = { 'st', 's:' .. i, 'g', 'tok', 'na:' .. i, 'de:' .. i, 'wfj', 'id:' .. i,
    'ts:' .. i, 'wf', 'ver', 'par', 'dep', 'ra:' .. i, 't:' .. i, 'a:' .. i, 'in:' .. i,
    'c:' .. i }
  if parents then
    for _, p in ipairs(split(parents)) do
      fields[#fields + 1] = 's:' .. p
      fields[#fields + 1] = 'rt:' .. p
      fields[#fields + 1] = 'o:' .. p
    end
  end
  local f = hmget_all(X, fields)
  f.pre = parents ~= nil
  f.parents = parents
  if not parents and f[3] then
    f.parents = redis.call('HGET', f[3], 'p:' .. i) or ''
  end
  return f
end

-- The reply for job i of execution E under token tok, attempt att and claim count claims
-- (strings). The previous results are a JSON object keyed by parent index; the worker names
-- them from its graph.
local function job_reply(X, E, i, f, tok, att, claims)
  local parents = split(f.parents)
  local prev = {}
  if #parents > 0 then
    local v = f
    local base = OWN
    if not f.pre then
      local fields = {}
      for _, p in ipairs(parents) do
        fields[#fields + 1] = 's:' .. p
        fields[#fields + 1] = 'rt:' .. p
        fields[#fields + 1] = 'o:' .. p
      end
      v = hmget_all(X, fields)
      base = 0
    end
    for j = 1, #parents do
      local s, rt, o = v[base + j * 3 - 2], v[base + j * 3 - 1], v[base + j * 3]
      if (s == 'C' and (not rt or contains(rt, i))) or s == 'K' then
        prev[#prev + 1] = '"' .. parents[j] .. '":' .. (o or 'null')
      end
    end
  end
  local init = ''
  if #parents == 0 then
    init = redis.call('HGET', X, 'init')
  end
  return { E, tonumber(i), tonumber(tok), tonumber(att), #parents,
    '{' .. table.concat(prev, ',') .. '}', init, f[6] == '1' and 1 or 0, f[10], f[11],
    f[12] or '', f[13], f[8], f[14] or '', f[17] or '', tonumber(claims) }
end

-- Hands out the jobs of the ready-list entries `popped` under a lease until `expiry`: their
-- replies go to `out`, their lease entries to `leases` (score, member pairs) and their
-- 'E|i|token' lines to `held` (the replay memo).
local function claim_popped(SP, popped, now, expiry, out, leases, held)
  for _, m in ipairs(popped) do
    -- 'tick' entries only wake blocked workers. A job is 'E|i', or 'E|i|parents' when the
    -- commit (or start) that made it ready knew them ('E|i|' for a root).
    local E, i, parents = string.match(m, '^([^|]+)|([^|]+)|?(.*)$')
    if E then
      local X = SP .. 'x:' .. E
      if not string.find(m, '|', #E + 2, true) then
        parents = nil
      end
      local f = job_fields(X, i, parents)
      if f[1] and f[2] == 'R' then
        if f[1] ~= 'running' then
          redis.call('HSET', X, 's:' .. i, 'D', 'ns:' .. i, 'pending')
        else
          local tok = istr((tonumber(f[4]) or 0) + 1)
          local att = f[5] or '1'
          local claims = istr((tonumber(f[18]) or 0) + 1)
          local H = { 'tok', tok, 't:' .. i, tok, 'a:' .. i, att, 'c:' .. i, claims,
            'ns:' .. i, 'running' }
          if not f[9] then
            H[#H + 1] = 'ts:' .. i
            H[#H + 1] = istr(now)
          end
          redis.call('HSET', X, unpack(H))
          local member = E .. '|' .. i
          leases[#leases + 1] = expiry
          leases[#leases + 1] = member
          held[#held + 1] = member .. '|' .. tok
          node_event(E, f[7], f[8], 'running', ',"attempt":' .. att, now)
          out[#out + 1] = job_reply(X, E, i, f, tok, att, claims)
        end
      end
    end
  end
end

-- Promotes due delayed jobs onto the ready list.
local function promote_due(ready, delayed, now)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
  if #due > 0 then
    redis.call('ZREM', delayed, unpack(due))
    redis.call('RPUSH', ready, unpack(due))
  end
end

-- Answers a replayed call from its memo: the jobs it handed out that are still held under the
-- same token.
local function claim_replay(SP, memo_value)
  local out = {}
  for E, i, tok in string.gmatch(memo_value, '([^|\n]+)|([^|\n]+)|([^|\n]+)') do
    local X = SP .. 'x:' .. E
    local f = job_fields(X, i, nil)
    if f[1] and f[2] == 'R' and f[15] == tok then
      out[#out + 1] = job_reply(X, E, i, f, tok, f[16] or '1', f[18] or '1')
    end
  end
  return out
end
