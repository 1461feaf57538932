-- Book the earliest slot that fits one request, atomically (see quota/ledger.py:
-- this is the same rule, for Redis). One call per reservation.
--
-- KEYS[1] slots:  sorted set, member "<slot id>|<tokens>", score = slot end (wall s)
-- KEYS[2] meta:   hash, "last" = start of the latest booked slot (FIFO order),
--                 "tok" = the tokens of every slot in KEYS[1] (a running total),
--                 "f:<member>" = "<hold until> <planned start>" of unanswered slots
-- KEYS[3] days:   hash, "<day>:r" requests, "<day>:t" tokens, "<day>:x" spent flag
-- KEYS[4] flight: sorted set of the unanswered slots, score = their end in KEYS[1]
--
-- The cost does not grow with the limit: the window is never read whole. Expired
-- slots are trimmed as they leave (their tokens taken off the running total), the
-- request limit is one ZRANGE by rank, and the token limit walks only the oldest
-- slots that must leave for the new one to fit.
--
-- ARGV[1], space-separated (one argument is cheaper for the client to send than
-- fourteen): now, period, max requests, max tokens, tokens, allowance, slot id,
-- deadline, today, end of today, end of tomorrow, max day requests, max day
-- tokens, max flight. A limit or deadline of "-1" means none.
-- Returns one string (the reply the client parses fastest): "ok <start> <day>",
-- "day <until> <detail>" or "wait <start>".

local function fmt(x)
  return string.format('%.17g', x)
end

local function tokens_of(member)
  return tonumber(string.match(member, '|(%d+)$'))
end

local arg = {}
for word in string.gmatch(ARGV[1], '%S+') do
  arg[#arg + 1] = word
end
local now = tonumber(arg[1])
local period = tonumber(arg[2])
local max_requests = tonumber(arg[3])
local max_tokens = tonumber(arg[4])
local tokens = tonumber(arg[5])
local allowance = tonumber(arg[6])
local slot_id = arg[7]
local deadline = tonumber(arg[8])
local today = tonumber(arg[9])
local today_end = tonumber(arg[10])
local tomorrow_end = tonumber(arg[11])
local max_day_requests = tonumber(arg[12])
local max_day_tokens = tonumber(arg[13])
local max_flight = tonumber(arg[14])

-- An unanswered request may still be on its way to the server: its slot ends no
-- earlier than now (until it is given up, MAX_FLIGHT after it was due to end).
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. fmt(now))) do
  local info = redis.call('HGET', KEYS[2], 'f:' .. member)
  local hold = info and tonumber(string.match(info, '^(%S+)'))
  if hold == nil or hold <= now or not redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZREM', KEYS[4], member)
    redis.call('HDEL', KEYS[2], 'f:' .. member)
  else
    redis.call('ZADD', KEYS[1], fmt(now), member)
    redis.call('ZADD', KEYS[4], fmt(now), member)
  end
end

-- Slots that left every future window, with their tokens. One second of slack: the
-- exact rule (end + period <= t) is applied below, so rounding never drops a live slot.
local cutoff = '(' .. fmt(now - period - 1)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local gone_tokens = 0
if #gone > 0 then
  for _, member in ipairs(gone) do
    gone_tokens = gone_tokens + tokens_of(member)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
end

local meta = redis.call('HMGET', KEYS[2], 'last', 'tok', 'exp')
local t = now
local last = tonumber(meta[1] or '')
if last and last > t then
  t = last
end
local total = tonumber(meta[2] or '0') - gone_tokens
local n = redis.call('ZCARD', KEYS[1])
if n == 0 or total < 0 then
  total = 0  -- nothing left to count (or a key expired apart): start the total afresh
end

if max_requests >= 0 then
  -- The window may hold max_requests - 1 others: the oldest must leave it.
  local keep = math.max(max_requests, 1)
  if n >= keep then
    local oldest = redis.call('ZRANGE', KEYS[1], n - keep, n - keep, 'WITHSCORES')
    local leave_at = tonumber(oldest[2]) + period
    if leave_at > t then
      t = leave_at
    end
  end
end

if max_tokens >= 0 then
  local room = math.max(max_tokens, tokens) - tokens
  local remaining = total
  local rank = 0
  while remaining > room and rank < n do
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
      remaining = remaining - tokens_of(chunk[i])
    end
    rank = rank + 16
  end
end

local day = today
local day_end = today_end
if t >= today_end then
  day = today + 1
  day_end = tomorrow_end
end
local day_counts = redis.call('HMGET', KEYS[3], day .. ':r', day .. ':t', day .. ':x')
local day_requests = tonumber(day_counts[1] or '0')
local day_tokens = tonumber(day_counts[2] or '0')
if #gone > 0 then
  -- Keep the running total true whatever the answer; a booking sets it below.
  redis.call('HSET', KEYS[2], 'tok', total)
end
if day_counts[3] then
  return 'day ' .. fmt(day_end) .. " the server reported the day's quota spent"
end
if max_day_requests >= 0 and day_requests + 1 > max_day_requests then
  return 'day ' .. fmt(day_end) .. ' ' .. day_requests .. ' of ' .. max_day_requests
    .. ' requests used'
end
if max_day_tokens >= 0 and day_tokens + tokens > math.max(max_day_tokens, tokens) then
  return 'day ' .. fmt(day_end) .. ' ' .. day_tokens .. ' of ' .. max_day_tokens
    .. ' tokens used'
end
if deadline >= 0 and t > deadline then
  return 'wait ' .. fmt(t)
end

local slot_end = t + allowance
local member = slot_id .. '|' .. tokens
redis.call('ZADD', KEYS[1], fmt(slot_end), member)
redis.call('ZADD', KEYS[4], fmt(slot_end), member)
redis.call('HSET', KEYS[2], 'last', fmt(t), 'tok', total + tokens,
  'f:' .. member, fmt(slot_end + max_flight) .. ' ' .. fmt(t))
redis.call('HSET', KEYS[3], day .. ':r', day_requests + 1, day .. ':t', day_tokens + tokens)

-- Memory stays bounded: the window keys live until their last slot leaves it.
-- Their TTL is lengthened only once it has fallen a minute behind ("exp", in the
-- callers' time) or when the window key was just created; the flight key comes and
-- goes with its members, so it gets its TTL every time.
local ttl = math.ceil((slot_end + max_flight + period - now) * 1000) + 1000
local expires = slot_end + max_flight + period
local known = tonumber(meta[3] or '')
if n == 0 or known == nil or expires > known then
  redis.call('PEXPIRE', KEYS[1], ttl + 60000)
  redis.call('PEXPIRE', KEYS[2], ttl + 60000)
  redis.call('HSET', KEYS[2], 'exp', fmt(expires + 60))
end
redis.call('PEXPIRE', KEYS[4], ttl)
if day_requests == 0 then
  -- The day's first booking: drop yesterday's counts; keep these until the end
  -- of tomorrow.
  redis.call('HDEL', KEYS[3], (today - 1) .. ':r', (today - 1) .. ':t', (today - 1) .. ':x')
  redis.call('PEXPIRE', KEYS[3], math.ceil((tomorrow_end - now) * 1000) + 60000)
end

return 'ok ' .. fmt(t) .. ' ' .. day
