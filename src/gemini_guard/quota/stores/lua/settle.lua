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
if not sent then
  if removed == 1 then
    add_day(day .. ':r', -1)
    add_day(day .. ':t', -booked_tokens)
  end
  return removed
end

redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1] .. '|' .. ARGV[5])
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
