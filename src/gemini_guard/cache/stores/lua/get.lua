-- KEYS: entry, lru (zset of entry keys by use), counter[, credential].  ARGV: now (wall seconds).
-- With a credential key, nothing is answered unless it holds an acceptance lasting past
-- now (its value is the wall time it lasts until; "0" records a refusal).
-- A live entry is returned and becomes the most recently used; an expired one is dropped.
if KEYS[4] then
  local lasts = redis.call('GET', KEYS[4])
  if not lasts or tonumber(lasts) <= tonumber(ARGV[1]) then
    return false
  end
end
local item = redis.call('HMGET', KEYS[1], 'v', 'x')
if not item[1] then
  redis.call('ZREM', KEYS[2], KEYS[1])
  return false
end
if tonumber(item[2]) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
  return false
end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), KEYS[1])
return item[1]
