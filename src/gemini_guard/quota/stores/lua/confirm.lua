-- Confirm a booked slot just before its request is sent: the booking rule checked
-- again against what was really sent (see SlotBook.confirm in quota/ledger.py).
--
-- KEYS[1] slots, KEYS[2] meta (see acquire.lua for the layout).
-- ARGV[1]: 7 little-endian doubles: tokens booked, now, period, max requests, max
-- tokens, allowance, max flight (a limit of -1 means none); then the slot's member,
-- "<slot id>|<tokens>".
-- Returns the seconds still to wait ("0" to send now); the slot is planned again
-- at now + wait.

local function fmt(x)
  return string.format('%.17g', x)
end

local tokens, now, period, max_requests, max_tokens, allowance, max_flight =
  struct.unpack('<ddddddd', ARGV[1])
local member = string.sub(ARGV[1], 57)
local entry = '~' .. member
local slots, meta = KEYS[1], KEYS[2]

local booked_end = redis.call('ZSCORE', slots, member)
if not booked_end then
  return '0'  -- released, or held so long it was given up
end
local m = redis.call('HMGET', meta, 'w', member)
if not m[1] then
  return '0'  -- the ledger's meta expired apart: the next acquire starts it afresh
end
local exp, last, window_tokens, fe, trim = struct.unpack('<ddddd', m[1])
-- Held until its first end + max flight (the field exists once its end has moved).
local hold = m[2] and tonumber(m[2]) or tonumber(booked_end) + max_flight

-- As in acquire: unanswered slots that are due end no earlier than now.
if fe < now then
  local given_up
  fe, given_up = hold_late(slots, meta, now, max_flight, member)
  if given_up then
    hold = nil  -- given up: held afresh below, as the other stores do
  end
end

local keep = math.max(max_requests, 1)

-- Fast path, O(log n): if the slot fits even counting every slot in the window
-- (later plans included), it fits.
local fits = true
if max_requests >= 0 then
  -- Count with a microsecond of slack, then apply the exact rule (end + period > now)
  -- to the few slots on the edge, so rounding neither misses nor adds one.
  local low = now - period - 1e-6
  local window = redis.call('ZCOUNT', slots, '(' .. fmt(low), '+inf')
  local edge = redis.call('ZRANGEBYSCORE', slots, '(' .. fmt(low), fmt(now - period + 1e-6),
    'WITHSCORES')
  for i = 2, #edge, 2 do
    if tonumber(edge[i]) + period <= now then
      window = window - 1
    end
  end
  fits = window - 1 < keep
end
if fits and max_tokens >= 0 then
  -- (the running total may still count slots that left the window: the slow path
  -- below is exact)
  fits = window_tokens - tokens <= math.max(max_tokens, tokens) - tokens
end

local t = now
if not fits then
  -- Slots planned to start after now have not been sent: they are checked when they
  -- are. Only unanswered slots ending after now can be such plans.
  local later = {}
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', slots, '-inf', '(' .. fmt(-now))) do
    local start = tonumber(redis.call('HGET', meta, other) or '')
    if start and start > now then
      later[string.sub(other, 2)] = true
    end
  end

  local ends, counts, total = {}, {}, 0
  local live = redis.call('ZRANGEBYSCORE', slots, '(' .. fmt(now - period - 1), '+inf', 'WITHSCORES')
  for i = 1, #live, 2 do
    local other = live[i]
    local slot_end = tonumber(live[i + 1])
    if other ~= member and not later[other] and slot_end + period > now then
      ends[#ends + 1] = slot_end
      counts[#counts + 1] = tonumber(string.match(other, '|(%d+)$'))
      total = total + counts[#counts]
    end
  end

  local n = #ends
  if max_requests >= 0 then
    if n >= keep then
      local leave_at = ends[n - keep + 1] + period
      if leave_at > t then
        t = leave_at
      end
    end
  end
  if max_tokens >= 0 then
    local room = math.max(max_tokens, tokens) - tokens
    for i = 1, n do
      if total <= room then
        break
      end
      if ends[i] + period > t then
        t = ends[i] + period
      end
      total = total - counts[i]
    end
  end
end

local slot_end = t + allowance
if hold == nil then
  hold = slot_end + max_flight
end
redis.call('ZADD', slots, slot_end, member, -slot_end, entry)
if slot_end < fe then
  fe = slot_end
end
local expires = math.max(hold, slot_end) + period
local stale = expires > exp
if stale then
  exp = expires + 60
end
redis.call('HSET', meta, 'w', struct.pack('<ddddd', exp, last, window_tokens, fe, trim),
  member, hold, entry, t)
if stale then
  local ttl = math.ceil((exp - now) * 1000) + 1000
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', slots, ttl + 1000)
end
return fmt(t - now)
