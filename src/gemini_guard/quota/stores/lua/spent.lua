-- Mark a Pacific day's quota spent (the server said so in a 429).
--
-- KEYS[1] slots, KEYS[2] meta (see acquire.lua for the layout).
-- ARGV[1]: 2 little-endian doubles: the day's ordinal, how long (seconds) the flag
-- must be kept at least.

local day, keep = struct.unpack('<dd', ARGV[1])
local meta = KEYS[2]
local requests, tokens = 0, 0
local counts = redis.call('HGET', meta, day)
if counts then
  requests, tokens = struct.unpack('<ddd', counts)
end
redis.call('HSET', meta, day, struct.pack('<ddd', requests, tokens, 1))
-- A new meta key gets a TTL, a shorter one is lengthened; never shortened.
if redis.call('PTTL', meta) < keep * 1000 then
  redis.call('PEXPIRE', meta, keep * 1000)
end
return 1
