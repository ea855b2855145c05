-- Creates an execution and makes its roots ready.
-- KEYS: ready, events, deadlines
-- ARGV: SP, E, events bounds (flush_events), wf, wfj, ver, par, dep, init, n, deadline ms or '',
--       request nonce, graph key (the definition version's parents and children, written once
--       per version by the client, see graphs.rs), parent node id ('' for a top-level
--       execution), parent link JSON fields ('' likewise; see 'lk' in lib.lua), then per node:
--       idj, number of parents; then, for a re-run (spane_core::rerun) only: the nodes ready at
--       start (comma-separated indices) and field/value pairs to write (the kept nodes'
--       states, outputs and routes, 'un', 'rof'); the per-node number is then the node's
--       join counter as the core computed it, and roots are not found by it
-- The nonce makes a replay of the same call (the client re-sends it after losing the reply)
-- answer 'ok' instead of 'duplicate'. A start sent with an idempotency key has the nonce
-- 'ik:<key>', so every start with that key (see redis/idempotency.rs) answers 'ok' too.
local SP, E, trim = ARGV[1], ARGV[2], ARGV[3]
local X = SP .. 'x:' .. E
local existing = redis.call('HGET', X, 'rq')
if existing then
  if existing == ARGV[12] then
    return 'ok'
  end
  return 'duplicate'
end
local now = now_ms()
local n = tonumber(ARGV[10])
local wfj = ARGV[5]
local H = { 'st', 'running', 'wf', ARGV[4], 'wfj', wfj, 'ver', ARGV[6], 'par', ARGV[7],
  'dep', ARGV[8], 'init', ARGV[9], 'ca', istr(now), 'un', istr(n), 'n', istr(n), 'tok', '0',
  'rq', ARGV[12], 'g', ARGV[13], '_h', PAD }
if ARGV[14] ~= '' then
  H[#H + 1] = 'pnd'
  H[#H + 1] = ARGV[14]
  H[#H + 1] = 'lk'
  H[#H + 1] = ARGV[15]
end
local roots = {}
if ARGV[11] ~= '' then
  H[#H + 1] = 'dl'
  H[#H + 1] = ARGV[11]
  redis.call('ZADD', KEYS[3], tonumber(ARGV[11]), E)
end
local seeded = ARGV[16 + n * 2]
for n_i = 0, n - 1 do
  local b = 16 + n_i * 2
  local i = istr(n_i)
  local np = ARGV[b + 1]
  H[#H + 1] = 'id:' .. i; H[#H + 1] = ARGV[b]
  H[#H + 1] = 'k:' .. i; H[#H + 1] = np
  if not seeded and np == '0' then
    H[#H + 1] = 's:' .. i; H[#H + 1] = 'R'
    H[#H + 1] = 'ra:' .. i; H[#H + 1] = istr(now)
    -- A root's entry says it has no parents (the trailing '|'), so its claim reads no graph.
    roots[#roots + 1] = E .. '|' .. i .. '|'
  end
end
if seeded then
  for _, i in ipairs(split(seeded)) do
    H[#H + 1] = 's:' .. i; H[#H + 1] = 'R'
    H[#H + 1] = 'ra:' .. i; H[#H + 1] = istr(now)
    -- Without its parents: the claim reads them from the graph.
    roots[#roots + 1] = E .. '|' .. i
  end
  for j = 17 + n * 2, #ARGV do
    H[#H + 1] = ARGV[j]
  end
end
hset_all(X, H)
if #roots > 0 then
  push_all('RPUSH', KEYS[1], roots)
end
-- The link is written above, so the started event carries it.
wf_event(X, E, wfj, 'started', nil, now)
flush_events(KEYS[2], trim)
return 'ok'
