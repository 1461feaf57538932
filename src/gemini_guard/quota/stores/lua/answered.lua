-- Record slots sent without a permit and already answered, several in one call:
-- for each, in order, what acquire.lua (no limits, no allowance, at the slot's
-- start) then settle.lua (sent, the same tokens, at the slot's end) would leave.
-- The pair's in-between states (the unanswered entry, a planned start) are never
-- written; the window's state and the days' counts are written once, at the end.
--
-- KEYS[1] slots, KEYS[2] meta (see acquire.lua for the layout).
-- ARGV[1]: 3 little-endian doubles: period, max flight, how many slots (n); then per
-- slot 7 doubles: start (the acquire's now), end, tokens, today, end of today, end
-- of tomorrow, the length of its member; then the n members ("<slot id>|<tokens>"),
-- one after another.
-- Returns how many slots were recorded (a slot in a day marked spent is not).

local blob = ARGV[1]
local period, max_flight, n = struct.unpack('<ddd', blob)
local slots, meta = KEYS[1], KEYS[2]

local w = redis.call('HGET', meta, 'w')
local exp, last, total, fe, trim
if w then
  exp, last, total, fe, trim = struct.unpack('<ddddd', w)
end
local exists = w and true or false

-- The days' counts as read or written so far (false: absent or deleted); the
-- changed ones are written at the end.
local days, dirty = {}, {}
local function day_counts(day)
  local counts = days[day]
  if counts == nil then
    counts = redis.call('HGET', meta, day)
    days[day] = counts
  end
  return counts
end

-- settle.lua recomputes fe from the entries once a slot is answered; the stored fe
-- may be lower than that (a bound), and stays so until then.
local fe_exact = false

local cleared = false
local ttl = nil
local recorded = 0
local pos = 25
local at = 25 + 56 * n
for _ = 1, n do
  local now, slot_end, tokens, today, today_end, tomorrow_end, length
  now, slot_end, tokens, today, today_end, tomorrow_end, length, pos =
    struct.unpack('<ddddddd', blob, pos)
  local member = string.sub(blob, at, at + length - 1)
  at = at + length

  if not exists then
    -- A new ledger (or one whose meta expired): drop whatever is left of its window.
    if not cleared then
      redis.call('DEL', slots)
      cleared = true
    end
    exp, last, total, fe, trim = -1, now, 0, math.huge, now + period / 2
    fe_exact = true
  end
  local t = now
  if last > t then
    t = last
  end

  -- As in acquire.lua: unanswered slots that are due end no earlier than now.
  if fe < now then
    fe = hold_late(slots, meta, now, max_flight)
    fe_exact = true
  end

  -- As in acquire.lua: slots that left every future window, every half period.
  if trim <= now then
    total = trim_gone(slots, now, period, total)
    trim = now + period / 2
  end

  local day, day_end = today, today_end
  if t >= today_end then
    day, day_end = today + 1, tomorrow_end
  end
  local counts = day_counts(day)
  local day_requests, day_tokens, spent = 0, 0, 0
  if counts then
    day_requests, day_tokens, spent = struct.unpack('<ddd', counts)
  end
  if spent == 0 then
    -- Booked at t (acquire.lua), then answered: it ends at its end (settle.lua).
    if exp < 0 then
      redis.call('ZADD', slots, 0, '@', slot_end, member)
    else
      redis.call('ZADD', slots, slot_end, member)
    end
    if not counts then
      for old = today - 3, today - 1 do
        days[old] = false
        dirty[old] = true
      end
    end
    -- acquire.lua's TTL plan for a slot ending at t, then settle.lua's for its end.
    local expires = t + max_flight + period
    if day_end > expires then
      expires = day_end
    end
    if expires > exp then
      exp = expires + 60
      ttl = math.ceil((exp - now) * 1000) + 1000
    end
    if slot_end + period > exp then
      exp = slot_end + period + 60
      ttl = math.ceil((exp - slot_end) * 1000) + 1000
    end
    days[day] = struct.pack('<ddd', day_requests + 1, day_tokens + tokens, 0)
    dirty[day] = true
    last = t
    total = total + tokens
    if not fe_exact then
      fe = first_unanswered(slots)
      fe_exact = true
    end
    exists = true
    recorded = recorded + 1
  end
end

if exists then
  local fields = { 'w', struct.pack('<ddddd', exp, last, total, fe, trim) }
  local deleted = {}
  for day in pairs(dirty) do
    if days[day] then
      fields[#fields + 1] = day
      fields[#fields + 1] = days[day]
    else
      deleted[#deleted + 1] = day
    end
  end
  redis.call('HSET', meta, unpack(fields))
  if #deleted > 0 then
    redis.call('HDEL', meta, unpack(deleted))
  end
  if ttl then
    redis.call('PEXPIRE', meta, ttl)
    redis.call('PEXPIRE', slots, ttl + 1000)
  end
end
return recorded
