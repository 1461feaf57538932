-- KEYS: entry, lru (zset of entry keys by use), counter.  ARGV: now (wall seconds).
-- A live entry is returned and becomes the most recently used; an expired one is dropped.
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
