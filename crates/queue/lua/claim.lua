-- Promotes due delayed jobs, then hands out up to `max` ready jobs under a lease, with their
-- inputs (the live parents' outputs) in the same reply.
-- KEYS: ready, delayed, leases, events
-- ARGV: SP, max, lease ms, events bounds (flush_events), request nonce
-- A replay of the same call (the client re-sends it after losing the reply) returns the jobs
-- the first run handed out, listed for a few seconds under P:{0}:claim:<nonce> as
-- 'E|i|token' lines, instead of handing out more and leaving the first ones to stall.
-- Reply: { jobs, µs until the earliest delayed job is due (by this server's clock, so the
-- workers' clocks do not matter) or -1 when none waits or jobs were handed out }, each job
--   { E, i, token, attempt, declared parents, previous JSON object, initial JSON or '',
--     delay elapsed 0/1, wf, ver, par, dep, node id JSON, ready at ms or '', children }
local SP, max, lease, trim = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local memo = SP .. 'claim:' .. ARGV[5]

local replay = redis.call('GET', memo)
if replay then
  return { claim_replay(SP, replay), -1 }
end
local now = now_ms()
promote_due(KEYS[1], KEYS[2], now)
local function until_due()
  local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #nxt == 0 then
    return -1
  end
  -- In microseconds: `now` is whole milliseconds, which would wake the worker up to one late.
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return math.max(tonumber(nxt[2]) * 1000 - now_us, 0)
end
local popped = redis.call('LPOP', KEYS[1], max)
if not popped then
  return { {}, until_due() }
end
local out, leases, held = {}, {}, {}
claim_popped(SP, popped, now, istr(now + lease), out, leases, held)
if #leases > 0 then
  push_all('ZADD', KEYS[3], leases)
end
flush_events(KEYS[4], trim)
if #out == 0 then
  return { out, until_due() }
end
redis.call('SET', memo, table.concat(held, '\n'), 'PX', math.min(lease, 5000))
return { out, -1 }
