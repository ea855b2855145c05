-- Binds a child execution to the current run of sub-workflow node i (see
-- crates/queue/src/children.rs): the child bound already when there is one (a replayed or
-- stalled claim starts no second child), the proposed one otherwise. The claim's token must
-- still hold the node.
-- KEYS: the execution's hash
-- ARGV: node index, token, proposed child id
-- Reply: the bound child id, or '' when the claim is stale
local X, i, tok, proposed = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local f = redis.call('HMGET', X, 's:' .. i, 't:' .. i, 'ch:' .. i, 'kids')
if f[1] ~= 'R' or f[2] ~= tok then
  return ''
end
if f[3] and f[3] ~= '' then
  return f[3]
end
local kids = proposed
if f[4] and f[4] ~= '' then
  kids = f[4] .. ',' .. proposed
end
redis.call('HSET', X, 'ch:' .. i, proposed, 'kids', kids)
return proposed
