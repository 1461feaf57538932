-- Book the earliest slot that fits one request, atomically (see quota/ledger.py:
-- this is the same rule, for Redis). One call per reservation.
--
-- A ledger is two keys with one hash tag:
--
-- KEYS[1] slots: sorted set, three kinds of members told apart by their score:
--   "<slot id>|<tokens>"   score = the slot's end (wall seconds, > 0);
--   "~<slot id>|<tokens>"  score = minus that end, one per unanswered slot: the
--                          index of the unanswered slots by end lives in the same
--                          key, so one ZADD writes a slot and its entry;
--   "@"                    score = 0, always there: the key never empties, so it
--                          never loses its TTL.
-- KEYS[2] meta: hash,
--   "w"        the window's state, 5 packed doubles (see below);
--   "<day>"    a Pacific day's counts, 3 packed doubles: requests, tokens, spent
--              (1 once the server said the day's quota is spent);
--   "<member>" the hold-until of an unanswered slot whose end has moved (absent: it
--              never moved, and it is held until its end + max flight);
--   "~<member>" the planned start of an unanswered slot planned ahead of the time
--              it was booked or confirmed (absent: it starts no later than that).
-- The window's state "w": exp, the callers' time until which both keys' TTLs are
-- known to last (absent "w": a new ledger, or one that expired); last, the start
-- of the latest booked slot (FIFO order); tok, the tokens of every slot member (a
-- running total, which counts the slots that left the window until they are
-- trimmed); fe, no unanswered slot ends before it (inf: none is unanswered); trim,
-- when the slots that left the window are next trimmed.
--
-- Packed doubles cost the script one struct call where each field read or written
-- costs Redis about half a microsecond and each number Lua parses or formats costs
-- it about as much; with them the usual call is four commands: one HMGET of two
-- fields, one ZRANGE by rank for the request limit, one ZADD, one HSET of two
-- fields. The rest runs only when it has work: unanswered slots are looked at when
-- fe is past; slots that left the window are trimmed every half period (meanwhile
-- they change no answer: the request limit is read by rank from the newest end, and
-- the token walk starts at the oldest, where a slot that left moves nothing); the
-- token limit walks the oldest slots only when the running total is over; the TTLs
-- are lengthened when exp falls short (about once a day: the day's counts need the
-- keys until the day is over).
--
-- ARGV[1]: 13 little-endian doubles: now, period, max requests, max tokens, tokens,
-- allowance, deadline, today, end of today, end of tomorrow, max day requests, max
-- day tokens, max flight (a limit or deadline of -1 means none); then the slot's
-- member, "<slot id>|<tokens>".
-- Returns the day's ordinal (an integer) when the slot starts now, else one string:
-- "ok <start> <day>", "day <until> <detail>" or "wait <start>".

local now, period, max_requests, max_tokens, tokens, allowance, deadline, today, today_end,
  tomorrow_end, max_day_requests, max_day_tokens, max_flight =
  struct.unpack('<ddddddddddddd', ARGV[1])
local member = string.sub(ARGV[1], 105)
local slots, meta = KEYS[1], KEYS[2]

local m = redis.call('HMGET', meta, 'w', today)
local exp, last, total, fe, trim
if m[1] then
  exp, last, total, fe, trim = struct.unpack('<ddddd', m[1])
else
  -- A new ledger (or one whose meta expired): drop whatever is left of its window.
  redis.call('DEL', slots)
  exp, last, total, fe, trim = -1, now, 0, math.huge, now + period / 2
end
local t = now
if last > t then
  t = last
end

-- Unanswered slots that are due end no earlier than now (window.lua).
if fe < now then
  fe = hold_late(slots, meta, now, max_flight)
end

-- Slots that left every future window, with their tokens (the exact rule is applied
-- below).
if trim <= now or (max_tokens >= 0 and total > math.max(max_tokens, tokens) - tokens) then
  total = trim_gone(slots, now, period, total)
  trim = now + period / 2
end

if max_requests >= 0 then
  -- The window may hold max_requests - 1 others: the oldest of the newest
  -- max_requests must leave it. The unanswered entries and "@" rank below every
  -- slot and score <= 0: one of them as the edge means fewer slots than that.
  local keep = max_requests > 1 and max_requests or 1
  local edge = redis.call('ZRANGE', slots, -keep, -keep, 'WITHSCORES')[2]
  if edge then
    local leave_at = tonumber(edge) + period
    if leave_at > t and leave_at > period then
      t = leave_at
    end
  end
end

if max_tokens >= 0 then
  local room = math.max(max_tokens, tokens) - tokens
  local remaining = total
  local offset = 0
  while remaining > room do
    -- Walk the oldest slots a few at a time until enough tokens have left.
    local chunk = redis.call('ZRANGEBYSCORE', slots, '(0', '+inf', 'WITHSCORES', 'LIMIT', offset, 16)
    if #chunk == 0 then
      break
    end
    for i = 1, #chunk, 2 do
      if remaining <= room then
        break
      end
      local leave_at = tonumber(chunk[i + 1]) + period
      if leave_at > t then
        t = leave_at
      end
      remaining = remaining - tonumber(string.match(chunk[i], '|(%d+)$'))
    end
    offset = offset + 16
  end
end

local day, day_end, counts = today, today_end, m[2]
if t >= today_end then
  day, day_end = today + 1, tomorrow_end
  counts = redis.call('HGET', meta, day)
end
local day_requests, day_tokens, spent = 0, 0, 0
if counts then
  day_requests, day_tokens, spent = struct.unpack('<ddd', counts)
end
local refused = nil
if spent > 0 then
  refused = 'day ' .. string.format('%.17g', day_end) .. " the server reported the day's quota spent"
elseif max_day_requests >= 0 and day_requests + 1 > max_day_requests then
  refused = 'day ' .. string.format('%.17g', day_end) .. ' ' .. day_requests .. ' of '
    .. max_day_requests .. ' requests used'
elseif max_day_tokens >= 0 and day_tokens + tokens > math.max(max_day_tokens, tokens) then
  refused = 'day ' .. string.format('%.17g', day_end) .. ' ' .. day_tokens .. ' of '
    .. max_day_tokens .. ' tokens used'
elseif deadline >= 0 and t > deadline then
  refused = 'wait ' .. string.format('%.17g', t)
end
if refused then
  if exp >= 0 then
    -- Keep what the script learned (trimmed total, moved slots) whatever the answer.
    redis.call('HSET', meta, 'w', struct.pack('<ddddd', exp, last, total, fe, trim))
  end
  return refused
end

local slot_end = t + allowance
local entry = '~' .. member
if exp < 0 then
  redis.call('ZADD', slots, 0, '@', slot_end, member, -slot_end, entry)
else
  redis.call('ZADD', slots, slot_end, member, -slot_end, entry)
end
if slot_end < fe then
  fe = slot_end
end
if not counts then
  -- The day's first booking: the days before today are no longer needed.
  redis.call('HDEL', meta, today - 1, today - 2, today - 3)
end

-- Memory stays bounded: the keys live until their last slot has left the window
-- (an unanswered one is held at most max flight) and the booked day is over. The
-- TTLs are lengthened only when that passes exp, then by a minute more.
local expires = slot_end + max_flight + period
if day_end > expires then
  expires = day_end
end
local stale = expires > exp
if stale then
  exp = expires + 60
end
redis.call('HSET', meta, 'w', struct.pack('<ddddd', exp, t, total + tokens, fe, trim),
  day, struct.pack('<ddd', day_requests + 1, day_tokens + tokens, 0))
if t > now then
  redis.call('HSET', meta, entry, t)  -- planned ahead: confirm must know
end
if stale then
  local ttl = math.ceil((exp - now) * 1000) + 1000
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', slots, ttl + 1000)  -- outlives meta: see "w" above
end

if t == now then
  return day
end
return 'ok ' .. string.format('%.17g', t) .. ' ' .. day
