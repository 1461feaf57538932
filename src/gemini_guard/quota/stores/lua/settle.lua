-- Settle a booked slot: release it, or record its true end and token count.
--
-- KEYS[1] slots, KEYS[2] meta (see acquire.lua for the layout).
-- ARGV[1]: 7 little-endian doubles: tokens booked, sent (1 or 0), end, tokens
-- counted, day, period, the length of the next field; then the slot's member as
-- booked ("<slot id>|<tokens booked>") and as counted ("<slot id>|<tokens counted>").
-- Returns 1 if the slot was still booked, else 0.

local booked_tokens, sent, slot_end, counted, day, period, length =
  struct.unpack('<ddddddd', ARGV[1])
local booked = string.sub(ARGV[1], 57, 56 + length)
local answered = string.sub(ARGV[1], 57 + length)
local entry = '~' .. booked
local slots, meta = KEYS[1], KEYS[2]

local m = redis.call('HMGET', meta, 'w', day, booked, entry)
if not m[1] then
  -- The ledger is gone (expired, flushed, a restarted Redis): nothing to release;
  -- an answer is recorded in a new ledger, as the other stores would keep it.
  if sent == 0 then
    return 0
  end
  redis.call('DEL', slots)
  redis.call('ZADD', slots, 0, '@', slot_end, answered)
  local exp = slot_end + period + 60
  redis.call('HSET', meta, 'w',
    struct.pack('<ddddd', exp, 0, counted, math.huge, slot_end + period / 2))
  local ttl = math.ceil((exp - slot_end) * 1000) + 1000
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', slots, ttl + 1000)
  return 0
end
local exp, last, total, fe, trim = struct.unpack('<ddddd', m[1])

-- The slot and its entry (an entry never outlives its slot: removed == 2 means it
-- was unanswered, then the earliest of the others is the new fe).
local removed = redis.call('ZREM', slots, booked, entry)
if removed == 2 then
  fe = first_unanswered(slots)
end
if removed > 0 then
  total = total - booked_tokens
end

-- The day's counts change only while the day is still kept (as in ledger.DayBook).
local counts = m[2]
local day_requests, day_tokens, spent
if removed > 0 and counts then
  day_requests, day_tokens, spent = struct.unpack('<ddd', counts)
  if sent == 0 then
    counts = struct.pack('<ddd', math.max(day_requests - 1, 0),
      math.max(day_tokens - booked_tokens, 0), spent)
  elseif counted ~= booked_tokens then
    counts = struct.pack('<ddd', day_requests,
      math.max(day_tokens + counted - booked_tokens, 0), spent)
  else
    counts = nil
  end
else
  counts = nil
end

local stale = false
if sent ~= 0 then
  if redis.call('ZADD', slots, slot_end, answered) == 1 then
    total = total + counted
  end
  -- The answer may come after the keys' TTL was last planned (a slow answer).
  if slot_end + period > exp then
    exp = slot_end + period + 60
    stale = true
  end
end

local state = struct.pack('<ddddd', exp, last, total, fe, trim)
if counts then
  redis.call('HSET', meta, 'w', state, day, counts)
else
  redis.call('HSET', meta, 'w', state)
end
if m[3] or m[4] then
  redis.call('HDEL', meta, booked, entry)
end
if stale then
  local ttl = math.ceil((exp - slot_end) * 1000) + 1000
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', slots, ttl + 1000)
end
if removed > 0 then
  return 1
end
return 0
