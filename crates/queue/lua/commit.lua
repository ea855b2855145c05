-- Applies the outcomes of a batch of attempts, each atomically and in order: result, joins,
-- skips, children enqueued, lease released, completion decided, events appended. A stale token
-- is refused. One call carries the commits that workers of one client finished meanwhile, so
-- the per-call cost (a round trip, the script's start, TIME, the ready-list push, the event
-- append, the lease removal) is paid once per batch instead of once per node.
-- After the commits, the call claims the committers' next jobs (BullMQ's "fetch next on
-- finish"): as many as they asked for, from the head of the ready list, as claim.lua does.
-- KEYS: ready, delayed, leases, events
-- ARGV: SP, retention ms, events bounds (flush_events), lease ms, request nonce (for the
--       claims' replay memo, see claim.lua), then per commit 14 values:
--       E, i, token, kind (complete|continue|fail|retry|delay|await), payload (data JSON or error
--       text), routes ('*' for all children, or the chosen child indices, comma-separated) or,
--       for continue, the output the children receive, per child of the node '1' when the
--       node is its only parent and '0' otherwise (one character each), delay ms,
--       consume attempt 0/1, fingerprint of this commit's content, the node's children from
--       the worker's graph (comma-separated), so that one HMGET reads the node's fields and
--       its children's join counters, how many next jobs the committer wants (0 or more),
--       and the node's event as the worker built it, in two parts (see built_event)
-- The commit was decided in the worker by spane_core::rules (CommitPlan::decide): routes are
-- resolved, an unknown route is already a failure, and the continueOnFail output is built.
-- Reply: { per commit two values: 'stale' or 'applied', and the finished status or '';
--          the claimed jobs, in the format of claim.lua, to hand out in commit order;
--          per commit the list of jobs handed to it directly (none or one) }
-- A committer gets its handed job first, then jobs from the common list up to what it asked.
-- A replay of an applied commit (the client re-sends it after losing the reply) answers what
-- the first run answered: each node remembers the token and content fingerprint of its last
-- applied commit and the status that commit decided (cm:i). A different commit with the same
-- token is stale.
local SP, retention, trim, lease = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local memo = SP .. 'claim:' .. ARGV[5]
local now = now_ms()
local want = 0
local out = {}
local done = {}
local wake = false
-- Claims made in this call: lease entries, replay memo lines, and per commit the job handed to
-- its committer directly (see handoff below).
local leases, held, handed = {}, {}, {}
local expiry = istr(now + lease)

local function commit_one(b)
  local E, i, tok, kind = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local fp = ARGV[b + 9]
  local X = SP .. 'x:' .. E
  local ev = { ARGV[b + 12], ARGV[b + 13] }
  local kids = split(ARGV[b + 10])
  local fields = { 'st', 's:' .. i, 't:' .. i, 'g', 'un', 'wfj', 'id:' .. i, 'a:' .. i,
    'cm:' .. i }
  for _, ch in ipairs(kids) do
    fields[#fields + 1] = 'k:' .. ch
  end
  -- A committer that wants a next job may get its first child directly (handoff): read what
  -- claiming it needs with the rest.
  local h, hb = nil, #fields
  if tonumber(ARGV[b + 11]) > 0 and kids[1] then
    h = kids[1]
    for _, name in ipairs({ 'tok', 'na:' .. h, 'de:' .. h, 'id:' .. h, 'ts:' .. h,
      'wf', 'ver', 'par', 'dep', 'c:' .. h }) do
      fields[#fields + 1] = name
    end
  end
  local f = hmget_all(X, fields)
  if f[1] and f[9] then
    local ct, cn, cf = string.match(f[9], '^(%S*) (%S*) ?(%S*)$')
    if ct == tok and cn == fp then
      return 'applied', cf or ''
    end
  end
  if not f[1] or f[3] ~= tok or f[2] ~= 'R' then
    return 'stale', ''
  end
  local member = E .. '|' .. i
  done[#done + 1] = member
  -- The node's children come from the worker's graph of this version (ARGV), not from Redis.
  local c = { X = X, E = E, SP = SP, G = f[4], st = f[1], un = tonumber(f[5]), wfj = f[6],
    now = now, ready = KEYS[1], children = ARGV[b + 10], H = {}, finished = '', ev = ev }
  do
    c.pre, c.single = {}, {}
    local single = ARGV[b + 6]
    for j, ch in ipairs(kids) do
      c.pre[ch] = f[9 + j]
      c.single[ch] = string.sub(single, j, j) == '1'
    end
  end
  local idj, attempt = f[7], f[8] or '1'
  local payload = ARGV[b + 4]

  if kind == 'await' then
    -- A sub-workflow node started its child: its lease goes (with the others in `done`), its
    -- token stays ('t:i'), so that the child's end is committed for it later under the same
    -- token, exactly once (crates/queue/src/children.rs). It is not handed out meanwhile.
    redis.call('HSET', X, 'cm:' .. i, tok .. ' ' .. fp)
    return 'applied', ''
  end

  if (kind == 'retry' or kind == 'delay') and c.st ~= 'running' and c.st ~= 'paused' then
    -- The execution ended while this attempt ran. The node only waited, so it does not fail
    -- and makes no dead letter: it is held (pending), as spane_core::rules decides, and a
    -- dead-letter retry that revives the execution runs it again.
    local H = { 't:' .. i, '', 's:' .. i, 'D', 'ns:' .. i, 'pending', 'cm:' .. i, tok .. ' ' .. fp }
    if kind == 'retry' then
      H[#H + 1] = 'de:' .. i
      H[#H + 1] = '0'
      H[#H + 1] = 'ch:' .. i
      H[#H + 1] = ''
      H[#H + 1] = 'e:' .. i
      H[#H + 1] = payload
      if ARGV[b + 8] == '1' then
        H[#H + 1] = 'na:' .. i
        H[#H + 1] = istr(tonumber(attempt) + 1)
      end
    end
    redis.call('HSET', X, unpack(H))
    return 'applied', ''
  end

  if kind == 'retry' or kind == 'delay' then
    local delay = tonumber(ARGV[b + 7])
    local H = { 't:' .. i, '', 'ns:' .. i, 'delayed', 'cm:' .. i, tok .. ' ' .. fp,
      'ra:' .. i, istr(now + delay) }
    if kind == 'retry' then
      -- A retry asks the rate limiter again, and starts a fresh child.
      H[#H + 1] = 'de:' .. i
      H[#H + 1] = '0'
      H[#H + 1] = 'ch:' .. i
      H[#H + 1] = ''
      if ARGV[b + 8] == '1' then
        H[#H + 1] = 'na:' .. i
        H[#H + 1] = istr(tonumber(attempt) + 1)
      end
      H[#H + 1] = 'e:' .. i
      H[#H + 1] = payload
    else
      H[#H + 1] = 'de:' .. i
      H[#H + 1] = '1'
    end
    built_event(ev, nil, now)
    redis.call('HSET', X, unpack(H))
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    redis.call('ZADD', KEYS[2], now + delay, member)
    if #first == 0 or tonumber(first[2]) > now + delay then
      wake = true
    end
    return 'applied', ''
  end

  local routes, data = nil, payload
  if kind == 'complete' and ARGV[b + 5] ~= '*' then
    routes = ARGV[b + 5]
  elseif kind == 'continue' then
    data = ARGV[b + 5]
  end

  local r0 = #READY
  settle(c, i, kind, routes, data, payload, attempt, idj)
  c.H[#c.H + 1] = 'cm:' .. i
  c.H[#c.H + 1] = tok .. ' ' .. fp .. ' ' .. c.finished
  if h and kind == 'complete' then
    -- Handoff: when this commit made the first child ready and this node is its only parent,
    -- the child is claimed here for the committer instead of going through the ready list:
    -- its input is this node's output, and its claim is written with the commit.
    local entry = E .. '|' .. h .. '|' .. i
    for r = #READY, r0 + 1, -1 do
      if READY[r] == entry then
        table.remove(READY, r)
        local ntok = istr((tonumber(f[hb + 1]) or 0) + 1)
        local att = f[hb + 2] or '1'
        local claims = (tonumber(f[hb + 10]) or 0) + 1
        local H = c.H
        H[#H + 1] = 'tok'; H[#H + 1] = ntok
        H[#H + 1] = 't:' .. h; H[#H + 1] = ntok
        H[#H + 1] = 'a:' .. h; H[#H + 1] = att
        H[#H + 1] = 'c:' .. h; H[#H + 1] = istr(claims)
        H[#H + 1] = 'ns:' .. h; H[#H + 1] = 'running'
        if not f[hb + 5] then
          H[#H + 1] = 'ts:' .. h; H[#H + 1] = istr(now)
        end
        local member = E .. '|' .. h
        leases[#leases + 1] = expiry
        leases[#leases + 1] = member
        held[#held + 1] = member .. '|' .. ntok
        node_event(E, c.wfj, f[hb + 4], 'running', ',"attempt":' .. att, now)
        handed[#handed + 1] = { { E, tonumber(h), tonumber(ntok), tonumber(att), 1,
          '{"' .. i .. '":' .. payload .. '}', '', f[hb + 3] == '1' and 1 or 0, f[hb + 6],
          f[hb + 7], f[hb + 8] or '', f[hb + 9], f[hb + 4], istr(now), '', claims } }
        write_back(c, retention)
        return 'applied', c.finished
      end
    end
  end
  write_back(c, retention)
  return 'applied', c.finished
end

for b = 6, #ARGV, 14 do
  local n = #handed
  local tag, finished = commit_one(b)
  out[#out + 1] = tag
  out[#out + 1] = finished
  if #handed == n then
    handed[#handed + 1] = {}
  end
  want = want + tonumber(ARGV[b + 11]) - #handed[#handed]
end
if #done > 0 then
  push_all('ZREM', KEYS[3], done)
end
flush_ready(KEYS[1])
local jobs = {}
if want > 0 then
  local replay = redis.call('GET', memo)
  if replay then
    jobs = claim_replay(SP, replay)
  else
    promote_due(KEYS[1], KEYS[2], now)
    local popped = redis.call('LPOP', KEYS[1], want)
    if popped then
      claim_popped(SP, popped, now, expiry, jobs, leases, held)
    end
  end
end
if #leases > 0 then
  push_all('ZADD', KEYS[3], leases)
  redis.call('SET', memo, table.concat(held, '\n'), 'PX', math.min(lease, 5000))
end
if wake then
  -- Wake workers blocked on the ready list, so they wait for the new earliest due time.
  redis.call('LPUSH', KEYS[1], 'tick')
end
flush_events(KEYS[4], trim)
return { out, jobs, handed }
