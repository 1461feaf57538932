-- Book the earliest slot that fits one request, atomically (see quota/ledger.py:
-- this is the same rule, for Redis). One call per reservation.
--
-- KEYS[1] slots: sorted set, member "<slot id>|<tokens>", score = slot end (wall s)
-- KEYS[2] meta:  hash, "last" = start of the latest booked slot (FIFO order)
-- KEYS[3] days:  hash, "<day>:r" requests, "<day>:t" tokens, "<day>:x" spent flag
-- KEYS[4] flight: sorted set of the slots not yet answered, score = the time
--                 until which they are held (see MAX_FLIGHT in ledger.py)
--
-- ARGV: now, period, max requests, max tokens, tokens, allowance, slot id,
--       deadline, today, end of today, end of tomorrow, max day requests,
--       max day tokens, max flight. A limit or deadline of "-1" means none.
-- Returns {"ok", start, day} or {"day", until, detail} or {"wait", start, ""}.

local function fmt(x)
  return string.format('%.17g', x)
end

local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local max_requests = tonumber(ARGV[3])
local max_tokens = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
local allowance = tonumber(ARGV[6])
local slot_id = ARGV[7]
local deadline = tonumber(ARGV[8])
local today = tonumber(ARGV[9])
local today_end = tonumber(ARGV[10])
local tomorrow_end = tonumber(ARGV[11])
local max_day_requests = tonumber(ARGV[12])
local max_day_tokens = tonumber(ARGV[13])
local max_flight = tonumber(ARGV[14])

-- An unanswered request may still be on its way to the server: its slot ends
-- no earlier than now.
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', fmt(now))
local flying = redis.call('ZRANGE', KEYS[4], 0, -1)
for _, member in ipairs(flying) do
  local slot_end = tonumber(redis.call('ZSCORE', KEYS[1], member) or '')
  if slot_end == nil then
    redis.call('ZREM', KEYS[4], member)
  elseif slot_end < now then
    redis.call('ZADD', KEYS[1], fmt(now), member)
  end
end

-- Slots that left every future window. One second of slack: the exact rule
-- (end + period <= t) is applied below, so rounding never drops a live slot.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. fmt(now - period - 1))

local t = now
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '')
if last and last > t then
  t = last
end

local slots = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local n = #slots / 2

if max_requests >= 0 and n > 0 then
  -- The window may hold max_requests - 1 others: the oldest must leave it.
  local must_leave = n - math.max(max_requests, 1) + 1
  if must_leave > 0 then
    local leave_at = tonumber(slots[must_leave * 2]) + period
    if leave_at > t then
      t = leave_at
    end
  end
end

if max_tokens >= 0 and n > 0 then
  local slot_tokens = {}
  local total = 0
  for i = 1, n do
    local count = tonumber(string.match(slots[2 * i - 1], '|(%d+)$'))
    slot_tokens[i] = count
    total = total + count
  end
  local room = math.max(max_tokens, tokens) - tokens
  for i = 1, n do
    if total <= room then
      break
    end
    local leave_at = tonumber(slots[2 * i]) + period
    if leave_at > t then
      t = leave_at
    end
    total = total - slot_tokens[i]
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
if day_counts[3] then
  return {'day', fmt(day_end), "the server reported the day's quota spent"}
end
if max_day_requests >= 0 and day_requests + 1 > max_day_requests then
  return {'day', fmt(day_end), day_requests .. ' of ' .. max_day_requests .. ' requests used'}
end
if max_day_tokens >= 0 and day_tokens + tokens > math.max(max_day_tokens, tokens) then
  return {'day', fmt(day_end), day_tokens .. ' of ' .. max_day_tokens .. ' tokens used'}
end
if deadline >= 0 and t > deadline then
  return {'wait', fmt(t), ''}
end

local slot_end = t + allowance
redis.call('ZADD', KEYS[1], fmt(slot_end), slot_id .. '|' .. tokens)
redis.call('ZADD', KEYS[4], fmt(slot_end + max_flight), slot_id .. '|' .. tokens)
redis.call('HSET', KEYS[2], 'last', fmt(t))
redis.call('HINCRBY', KEYS[3], day .. ':r', 1)
redis.call('HINCRBY', KEYS[3], day .. ':t', tokens)
redis.call('HDEL', KEYS[3], (today - 1) .. ':r', (today - 1) .. ':t', (today - 1) .. ':x')

-- Memory stays bounded: the window keys live until their last slot leaves it,
-- the day counts until the end of tomorrow.
local ttl = math.ceil((slot_end + max_flight + period - now) * 1000) + 1000
for _, i in ipairs({1, 2, 4}) do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
redis.call('PEXPIRE', KEYS[3], math.ceil((tomorrow_end - now) * 1000) + 60000)

return {'ok', fmt(t), day}
