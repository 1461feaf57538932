-- Settle a booked slot: release it, or record its true end and token count.
--
-- KEYS[1] slots, KEYS[2] meta, KEYS[3] days, KEYS[4] flight (see acquire.lua)
-- ARGV: slot id, tokens booked, sent ("1"/"0"), end, tokens counted, day,
--       period, now
-- Returns 1 if the slot was still booked, else 0.

local booked = ARGV[1] .. '|' .. ARGV[2]
local booked_tokens = tonumber(ARGV[2])
local sent = ARGV[3] == '1'
local slot_end = tonumber(ARGV[4])
local counted_tokens = tonumber(ARGV[5])
local day = ARGV[6]
local period = tonumber(ARGV[7])
local now = tonumber(ARGV[8])

local function add_day(field, delta)
  if delta ~= 0 and redis.call('HEXISTS', KEYS[3], field) == 1 then
    if redis.call('HINCRBY', KEYS[3], field, delta) < 0 then
      redis.call('HSET', KEYS[3], field, 0)
    end
  end
end

local removed = redis.call('ZREM', KEYS[1], booked)
redis.call('ZREM', KEYS[4], booked)
redis.call('HDEL', KEYS[2], 'f:' .. booked)
if removed == 1 and booked_tokens ~= 0 then  -- (-0 would not be an integer)
  redis.call('HINCRBY', KEYS[2], 'tok', 0 - booked_tokens)
end
if not sent then
  if removed == 1 then
    add_day(day .. ':r', -1)
    add_day(day .. ':t', -booked_tokens)
  end
  return removed
end

local fresh = redis.call('EXISTS', KEYS[1]) == 0  -- its last member was just removed
if redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1] .. '|' .. ARGV[5]) == 1 and counted_tokens ~= 0 then
  redis.call('HINCRBY', KEYS[2], 'tok', counted_tokens)
end
if fresh then
  -- A new key has no TTL: make the next acquire give it the window's TTL again.
  redis.call('HDEL', KEYS[2], 'exp')
end
if removed == 1 then
  add_day(day .. ':t', counted_tokens - booked_tokens)
end
local ttl = math.ceil((slot_end + period - now) * 1000) + 1000
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return removed
