-- Book the earliest slot that fits one request, atomically (see quota/ledger.py:
-- this is the same rule, for Redis). One call per reservation.
--
-- KEYS[1] slots:  sorted set, member "<slot id>|<tokens>", score = slot end (wall s)
-- KEYS[2] meta:   hash, "last" = start of the latest booked slot (FIFO order),
--                 "tok" = the tokens of every slot in KEYS[1] (a running total),
--                 "exp" = when the window keys' TTL must next be lengthened,
--                 "f:<member>" = "<hold until> <planned start>" of unanswered slots
-- KEYS[3] days:   hash, "<day>:r" requests, "<day>:t" tokens, "<day>:x" spent flag
-- KEYS[4] flight: sorted set of the unanswered slots, score = their end in KEYS[1]
--
-- The cost does not grow with the limit, and the usual call is about ten commands:
-- the window is never read whole. Slots that left it are fetched a few at a time
-- (then trimmed by rank and their tokens taken off the running total);
-- the request limit is one ZRANGE by rank from the newest end; the token limit walks
-- only the oldest slots that must leave for the new one to fit; the unanswered slots
-- are looked at only when the earliest of them is due.
--
-- Inside a script every command costs a few microseconds, and so do parsing and
-- formatting numbers in Lua (tonumber, string.format: about a microsecond each) and
-- defining local functions. So the numbers arrive packed as little-endian doubles
-- (struct.unpack reads them in one call), go to redis.call as numbers (Redis writes
-- them with 17 significant digits: exact), and the client sends, preformatted, the
-- strings the usual call needs.
--
-- ARGV[1]: 13 little-endian doubles: now, period, max requests, max tokens, tokens,
-- allowance, deadline, today, end of today, end of tomorrow, max day requests, max
-- day tokens, max flight. A limit or deadline of -1 means none.
-- ARGV[2]: the slot id. ARGV[3]: "<now + allowance + max flight> <now>", the flight
-- info of a slot booked now. ARGV[4]: today's ordinal, as text.
-- Returns the day's ordinal (an integer) when the slot starts now, else one string:
-- "ok <start> <day>", "day <until> <detail>" or "wait <start>".

local now, period, max_requests, max_tokens, tokens, allowance, deadline, today, today_end,
  tomorrow_end, max_day_requests, max_day_tokens, max_flight =
  struct.unpack('<ddddddddddddd', ARGV[1])
local slot_id, info_now, today_s = ARGV[2], ARGV[3], ARGV[4]

-- An unanswered request may still be on its way to the server: its slot ends no
-- earlier than now (until it is given up, MAX_FLIGHT after it was due to end).
-- The earliest unanswered slot says whether any is due (and whether the key exists).
local earliest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
local flight_fresh = earliest[1] == nil
if not flight_fresh and tonumber(earliest[2]) < now then
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)) do
    local info = redis.call('HGET', KEYS[2], 'f:' .. member)
    local hold = info and tonumber(string.match(info, '^(%S+)'))
    if hold == nil or hold <= now or not redis.call('ZSCORE', KEYS[1], member) then
      redis.call('ZREM', KEYS[4], member)
      redis.call('HDEL', KEYS[2], 'f:' .. member)
    else
      redis.call('ZADD', KEYS[1], now, member)
      redis.call('ZADD', KEYS[4], now, member)
    end
  end
  flight_fresh = redis.call('EXISTS', KEYS[4]) == 0
end

-- Slots that left every future window, with their tokens: a few at a time, without
-- their scores (formatting a score for the script costs more than the command). One
-- second of slack: the exact rule (end + period <= t) is applied below, so rounding
-- never drops a live slot.
local cutoff = now - period - 1
local gone_members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, 4)
if #gone_members == 4 then
  -- More may have left (the ledger sat idle): take them all.
  gone_members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
end
local gone, gone_tokens = #gone_members, 0
if gone > 0 then
  for i = 1, gone do
    gone_tokens = gone_tokens + tonumber(string.match(gone_members[i], '|(%d+)$'))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, gone - 1)
end
local n = redis.call('ZCARD', KEYS[1])
local empty = n == 0

local meta = redis.call('HMGET', KEYS[2], 'last', 'tok', 'exp')
local t = now
local last = tonumber(meta[1] or '')
if last and last > t then
  t = last
end
local total = tonumber(meta[2] or '0') - gone_tokens
if empty or total < 0 then
  total = 0  -- nothing left to count (or a key expired apart): start the total afresh
end

if max_requests >= 0 and not empty then
  -- The window may hold max_requests - 1 others: the oldest of the newest
  -- max_requests must leave it (none to wait for if there are fewer).
  local keep = math.max(max_requests, 1)
  local edge = n >= keep and redis.call('ZRANGE', KEYS[1], -keep, -keep, 'WITHSCORES') or {}
  if edge[2] then
    local leave_at = tonumber(edge[2]) + period
    if leave_at > t then
      t = leave_at
    end
  end
end

if max_tokens >= 0 then
  local room = math.max(max_tokens, tokens) - tokens
  local remaining = total
  local rank = 0
  while remaining > room do
    -- Walk the oldest slots a few at a time until enough tokens have left.
    local chunk = redis.call('ZRANGE', KEYS[1], rank, rank + 15, 'WITHSCORES')
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
    rank = rank + 16
  end
end

local day = today
local day_s = today_s
local day_end = today_end
if t >= today_end then
  day = today + 1
  day_s = tostring(day)
  day_end = tomorrow_end
end
local day_counts = redis.call('HMGET', KEYS[3], day_s .. ':r', day_s .. ':t', day_s .. ':x')
local day_requests = tonumber(day_counts[1] or '0')
local day_tokens = tonumber(day_counts[2] or '0')
local refused = nil
if day_counts[3] then
  refused = 'day ' .. string.format('%.17g', day_end) .. " the server reported the day's quota spent"
elseif max_day_requests >= 0 and day_requests + 1 > max_day_requests then
  refused = 'day ' .. string.format('%.17g', day_end) .. ' ' .. day_requests .. ' of ' .. max_day_requests
    .. ' requests used'
elseif max_day_tokens >= 0 and day_tokens + tokens > math.max(max_day_tokens, tokens) then
  refused = 'day ' .. string.format('%.17g', day_end) .. ' ' .. day_tokens .. ' of ' .. max_day_tokens
    .. ' tokens used'
elseif deadline >= 0 and t > deadline then
  refused = 'wait ' .. string.format('%.17g', t)
end
if refused then
  if gone > 0 then
    -- Keep the running total true whatever the answer.
    redis.call('HSET', KEYS[2], 'tok', total)
  end
  return refused
end

local slot_end = t + allowance
local member = slot_id .. '|' .. tokens
local info
if t == now then
  info = info_now
else
  info = string.format('%.17g', slot_end + max_flight) .. ' ' .. string.format('%.17g', t)
end
redis.call('ZADD', KEYS[1], slot_end, member)
redis.call('ZADD', KEYS[4], slot_end, member)

-- Memory stays bounded: the window keys live until their last slot leaves it.
-- Their TTL is lengthened only once it has fallen a minute behind ("exp", in the
-- callers' time) or when a key was just created. The flight key comes and goes with
-- its members: it gets its TTL when it is created.
local ttl = math.ceil((slot_end + max_flight + period - now) * 1000) + 1000
local expires = slot_end + max_flight + period
local known = tonumber(meta[3] or '')
if empty or known == nil or expires > known then
  redis.call('HSET', KEYS[2], 'last', t, 'tok', total + tokens, 'f:' .. member, info,
    'exp', expires + 60)
  redis.call('PEXPIRE', KEYS[1], ttl + 60000)
  redis.call('PEXPIRE', KEYS[2], ttl + 60000)
  redis.call('PEXPIRE', KEYS[4], ttl + 60000)
else
  redis.call('HSET', KEYS[2], 'last', t, 'tok', total + tokens, 'f:' .. member, info)
  if flight_fresh then
    redis.call('PEXPIRE', KEYS[4], ttl + 60000)
  end
end
redis.call('HSET', KEYS[3], day_s .. ':r', day_requests + 1, day_s .. ':t', day_tokens + tokens)
if day_requests == 0 then
  -- The day's first booking: drop yesterday's counts; keep these until the end
  -- of tomorrow.
  local before = tostring(day - 1)
  redis.call('HDEL', KEYS[3], before .. ':r', before .. ':t', before .. ':x')
  redis.call('PEXPIRE', KEYS[3], math.ceil((tomorrow_end - now) * 1000) + 60000)
end

if t == now then
  return day
end
return 'ok ' .. string.format('%.17g', t) .. ' ' .. day
