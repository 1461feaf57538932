-- KEYS: entry, lru, counter.  ARGV: value, expires_at (wall), max_entries, ttl_ms.
-- The expiry that counts is expires_at, read against the caller's clock; the PEXPIRE
-- only lets Redis reclaim the memory of entries nobody asks for again.
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'x', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), KEYS[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for _, key in ipairs(oldest) do
    redis.call('DEL', key)
  end
  redis.call('ZREM', KEYS[2], unpack(oldest))
end
return over
