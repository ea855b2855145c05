-- Shared by every SPANE script (prepended to each one).
--
-- One execution lives in one hash, SP .. 'x:' .. E, where SP is the shard prefix that carries
-- the hash tag (for example 'spane:{0}:'), so that an execution and its shard's queues share a
-- slot. Fields:
--   st        execution status: running | completed | failed | cancelled
--   wf, wfj   workflow id, and the same as a JSON string
--   ver, par, dep, init, ca, fa, err   version, parent, depth, initial JSON, created, finished, error
--   pnd, lk   for a sub-workflow's execution: the parent's node id, and the parent link as the
--             JSON fields its workflow events carry (',"parentExecutionId":..,"parentNodeId":..')
--   kids      the child executions this one started (comma-separated ids)
--   un        nodes not resolved yet;  n  node count;  tok  last fencing token handed out
--   g         the key of the definition version's graph hash, SP .. 'g:' .. wf .. ':' .. ver,
--             written once per version (not per execution): p:i / c:i, the parents and children
--             of node i (comma-separated indices)
-- per node i:
--   id:i      node id as a JSON string
--   k:i       remaining parents + 65536 * parents whose data flows in
--   s:i       W (absent) | R ready | C completed | K failed-and-continued | F failed | S skipped | D held
--   ns:i      status shown to users: pending | running | delayed | completed | failed | skipped
--   o:i rt:i e:i  output JSON, routes (comma-separated child indices; absent = all), last error
--   a:i na:i  attempt running / attempt the next claim runs (absent: 1);  t:i  current lease token
--   c:i       times the node was claimed (absent: 0)
--   ts:i tf:i de:i sc:i  started, finished, delay elapsed, stall count;  dlq:i  DLQ item JSON
--   ra:i      when the node last became claimable (for the queue-wait metric)
--   ch:i      for a sub-workflow node: the child bound to its current run ('' or absent: none)
--   cm:i      the last applied commit: token, content fingerprint and decided status,
--             space-separated
--   _h        padding that keeps the hash a real hash table (see PAD)
--
-- Node indices stay strings inside the scripts: concatenating a Lua number formats it as a
-- float, which showed up in profiles.

local ENC = 65536

-- A value longer than `hash-max-listpack-value` (64 by default) makes Redis keep the hash as a
-- hash table. A listpack is scanned linearly on every field lookup, and an execution hash holds
-- ~15 fields per node that the scripts read and write many times per node: profiles showed
-- most of Redis's time in listpack scans before this.
local PAD = string.rep('.', 80)

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function istr(n)
  return string.format('%d', n)
end

-- Comma-separated node indices, as strings.
local function split(s)
  local out = {}
  if s and s ~= '' then
    for v in string.gmatch(s, '[^,]+') do
      out[#out + 1] = v
    end
  end
  return out
end

local function contains(csv, n)
  for _, v in ipairs(split(csv)) do
    if v == n then
      return true
    end
  end
  return false
end

-- Redis's Lua cannot unpack more than about 8000 values at once: calls with long argument
-- lists (wide graphs) go in chunks.
local CHUNK = 4000

local function hset_all(key, list)
  for i = 1, #list, CHUNK do
    redis.call('HSET', key, unpack(list, i, math.min(i + CHUNK - 1, #list)))
  end
end

local function push_all(cmd, key, list)
  for i = 1, #list, CHUNK do
    redis.call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, #list)))
  end
end

local function hmget_all(key, fields)
  if #fields <= CHUNK then
    return redis.call('HMGET', key, unpack(fields))
  end
  local out = {}
  for i = 1, #fields, CHUNK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #part do
      out[#out + 1] = part[j]
    end
  end
  return out
end

local EV = {}

local function node_event(E, wfj, idj, status, extra, now)
  EV[#EV + 1] = '{"type":"node:progress","executionId":"' .. E .. '","workflowId":' .. wfj ..
    ',"nodeId":' .. idj .. ',"status":"' .. status .. '"' .. (extra or '') ..
    ',"timestamp":' .. istr(now) .. '}'
end

-- An event built by the worker (spane_core::CommitPlan::event), split in two so that the
-- script adds what only it knows: `ev` is { head, tail }; the event is head, then
-- ',"data":' .. data when `data` is given, then tail, then the timestamp.
local function built_event(ev, data, now)
  if data then
    EV[#EV + 1] = ev[1] .. ',"data":' .. data .. ev[2] .. istr(now) .. '}'
  else
    EV[#EV + 1] = ev[1] .. ev[2] .. istr(now) .. '}'
  end
end

-- A workflow event of execution E (hash X). A sub-workflow's execution carries its parent
-- link in every workflow event; when it ends (completed, failed, cancelled), it is also
-- recorded in its shard's 'ended' set, the outbox its parent's resumption reads (see
-- crates/queue/src/children.rs): in the same step that ended it.
local function wf_event(X, E, wfj, status, err, now)
  local e = ''
  if err then
    e = ',"error":' .. cjson.encode(err)
  end
  local lk = redis.call('HGET', X, 'lk') or ''
  EV[#EV + 1] = '{"type":"workflow:status","executionId":"' .. E .. '","workflowId":' .. wfj ..
    ',"status":"' .. status .. '"' .. lk .. e .. ',"timestamp":' .. istr(now) .. '}'
  if lk ~= '' and (status == 'completed' or status == 'failed' or status == 'cancelled') then
    local SP = string.sub(X, 1, #X - #E - 2)
    redis.call('ZADD', SP .. 'ended', now, E)
  end
end

-- Jobs that became ready during this call, pushed once at its end (flush_ready).
local READY = {}

local function flush_ready(key)
  if #READY > 0 then
    push_all('RPUSH', key, READY)
    READY = {}
  end
end

-- Appends the events of this call as one stream entry. `trim` is the stream's two bounds,
-- '<cap> <max age ms>' (RedisConfig::events_trim), both applied approximately: at most about
-- cap entries (XADD MAXLEN ~) and none much older than max age (XTRIM MINID ~, by the new
-- entry's id, which is Redis's clock in ms), so the stream does not keep old events for ever.
local function flush_events(stream, trim)
  if #EV > 0 then
    local cap, age = string.match(trim, '^(%d+) (%d+)$')
    local id = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', 'e',
      '[' .. table.concat(EV, ',') .. ']')
    EV = {}
    local ms = tonumber(string.match(id, '^(%d+)')) - tonumber(age)
    if ms > 0 then
      redis.call('XTRIM', stream, 'MINID', '~', istr(ms))
    end
  end
end

-- Applies the end of an attempt of node i: kind is 'complete' (routes: nil for all children, or
-- a comma-separated list of child indices; data: the output), 'continue' (failed with
-- continueOnFail; data: the output its children receive) or 'fail'.
-- `c` carries the execution: X, E, SP, G (its graph key), st, un, wfj, now, ready key, H (fields
-- to write), and ev, the node's event as the worker built it (absent for a stall).
local function settle(c, i, kind, routes, data, err, attempt, idj)
  local function set(k, v)
    c.H[#c.H + 1] = k
    c.H[#c.H + 1] = v
  end
  local now = c.now
  set('t:' .. i, '')
  set('tf:' .. i, istr(now))
  if kind == 'complete' then
    set('s:' .. i, 'C')
    set('ns:' .. i, 'completed')
    set('o:' .. i, data)
    if routes then
      set('rt:' .. i, routes)
    end
    built_event(c.ev, data, now)
  else
    local continued = kind == 'continue'
    set('s:' .. i, continued and 'K' or 'F')
    set('ns:' .. i, 'failed')
    set('e:' .. i, err)
    if continued then
      -- The output the children receive, built by the worker (spane_core::failure_output).
      set('o:' .. i, data)
    end
    if c.ev then
      built_event(c.ev, nil, now)
    else
      -- A stall decided here (reclaim.lua): no worker reported an outcome.
      node_event(c.E, c.wfj, idj, 'failed', ',"error":' .. cjson.encode(err) .. ',"attempt":' ..
        attempt, now)
    end
    if not continued then
      -- Failed for good: the node stays unresolved (a DLQ retry revives it) and the execution
      -- fails once.
      if c.st ~= 'cancelled' then
        redis.call('ZADD', c.SP .. 'dlq', now, c.E .. '|' .. i)
        set('dlq:' .. i, cjson.encode({
          reason = c.reason or 'failed', error = err, attempts = tonumber(attempt), failedAt = now
        }))
      end
      -- A paused execution fails too: its resume would leave a node that never resolves.
      if c.st == 'running' or c.st == 'paused' then
        c.st = 'failed'
        c.finished = 'failed'
        local msg = 'node ' .. idj .. ' failed: ' .. err
        set('st', 'failed')
        set('err', msg)
        set('fa', istr(now))
        wf_event(c.X, c.E, c.wfj, 'failed', msg, now)
      end
      return
    end
  end

  -- Resolved: propagate to the descendants.
  c.un = c.un - 1
  -- Join counters of the children touched, read once each. The caller may have read them
  -- already with the node's own fields (c.pre: child -> counter). A child's parent list is read
  -- only when the child becomes ready, so a join of n parents has it read once, not n times;
  -- c.single names the children whose only parent is i (the worker knows the graph), which
  -- need no read at all.
  local counters = {}
  if c.pre then
    for ch, k in pairs(c.pre) do
      counters[ch] = tonumber(k) or 0
    end
  end
  local work = { { i, kind, routes } }
  local push = {}
  while #work > 0 do
    local item = table.remove(work)
    local p, pkind, proutes = item[1], item[2], item[3]
    local children
    if p == i then
      children = split(c.children)
    else
      children = split(redis.call('HGET', c.G, 'c:' .. p))
    end
    if #children > 0 then
      local need, fields = {}, {}
      for _, ch in ipairs(children) do
        if counters[ch] == nil then
          need[#need + 1] = ch
          fields[#fields + 1] = 'k:' .. ch
        end
      end
      if #fields > 0 then
        local vals = hmget_all(c.X, fields)
        for j, ch in ipairs(need) do
          counters[ch] = tonumber(vals[j]) or 0
        end
      end
      for _, ch in ipairs(children) do
        local feeds = (pkind == 'complete' and (proutes == nil or contains(proutes, ch)))
          or pkind == 'continue'
        local v = counters[ch] - 1
        if feeds then
          v = v + ENC
        end
        counters[ch] = v
        set('k:' .. ch, istr(v))
        if v % ENC == 0 then
          if v >= ENC then
            push[#push + 1] = ch
          else
            c.un = c.un - 1
            set('s:' .. ch, 'S')
            set('ns:' .. ch, 'skipped')
            set('tf:' .. ch, istr(now))
            node_event(c.E, c.wfj, redis.call('HGET', c.X, 'id:' .. ch), 'skipped', nil, now)
            work[#work + 1] = { ch, 'skip', nil }
          end
        end
      end
    end
  end
  for _, ch in ipairs(push) do
    if c.st == 'running' then
      set('s:' .. ch, 'R')
      set('ra:' .. ch, istr(now))
      -- The parents ride along, so that the claim reads the inputs in the same call as
      -- the node's own fields.
      local parents = i
      if not (c.single and c.single[ch]) then
        parents = redis.call('HGET', c.G, 'p:' .. ch) or ''
      end
      READY[#READY + 1] = c.E .. '|' .. ch .. '|' .. parents
    else
      -- Paused or ended: the node is held; resume or a DLQ retry requeues it.
      set('s:' .. ch, 'D')
    end
  end
  if (c.st == 'running' or c.st == 'paused') and c.un == 0 then
    c.st = 'completed'
    c.finished = 'completed'
    set('st', 'completed')
    set('fa', istr(now))
    wf_event(c.X, c.E, c.wfj, 'completed', nil, now)
  end
end

-- Writes what settle collected and sets the expiry of a finished execution.
local function write_back(c, retention)
  c.H[#c.H + 1] = 'un'
  c.H[#c.H + 1] = istr(c.un)
  hset_all(c.X, c.H)
  if c.finished == 'completed' then
    redis.call('PEXPIRE', c.X, retention)
  end
end
