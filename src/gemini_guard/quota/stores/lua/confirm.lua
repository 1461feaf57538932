-- Confirm a booked slot just before its request is sent: the booking rule checked
-- again against what was really sent (see SlotBook.confirm in quota/ledger.py).
--
-- KEYS[1] slots, KEYS[2] meta, KEYS[3] days, KEYS[4] flight (see acquire.lua)
-- ARGV: slot id, tokens booked, now, period, max requests, max tokens, allowance,
--       max flight. A limit of "-1" means none.
-- Returns the seconds still to wait ("0" to send now); the slot is planned again
-- at now + wait.

local function fmt(x)
  return string.format('%.17g', x)
end

local function tokens_of(member)
  return tonumber(string.match(member, '|(%d+)$'))
end

local member = ARGV[1] .. '|' .. ARGV[2]
local tokens = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local period = tonumber(ARGV[4])
local max_requests = tonumber(ARGV[5])
local max_tokens = tonumber(ARGV[6])
local allowance = tonumber(ARGV[7])
local max_flight = tonumber(ARGV[8])

if not redis.call('ZSCORE', KEYS[1], member) then
  return '0'  -- released, or held so long it was given up
end

-- As in acquire: unanswered slots that are due end no earlier than now.
for _, other in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. fmt(now))) do
  local info = redis.call('HGET', KEYS[2], 'f:' .. other)
  local hold = info and tonumber(string.match(info, '^(%S+)'))
  if hold == nil or hold <= now or not redis.call('ZSCORE', KEYS[1], other) then
    redis.call('ZREM', KEYS[4], other)
    redis.call('HDEL', KEYS[2], 'f:' .. other)
  else
    redis.call('ZADD', KEYS[1], fmt(now), other)
    redis.call('ZADD', KEYS[4], fmt(now), other)
  end
end

local keep = math.max(max_requests, 1)
local info = redis.call('HGET', KEYS[2], 'f:' .. member)

-- Fast path, O(log n): if the slot fits even counting every slot in the window
-- (later plans included), it fits.
local fits = true
if max_requests >= 0 then
  -- Count with a microsecond of slack, then apply the exact rule (end + period > now)
  -- to the few slots on the edge, so rounding neither misses nor adds one.
  local low = now - period - 1e-6
  local window = redis.call('ZCOUNT', KEYS[1], '(' .. fmt(low), '+inf')
  local edge = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(low), fmt(now - period + 1e-6),
    'WITHSCORES')
  for i = 2, #edge, 2 do
    if tonumber(edge[i]) + period <= now then
      window = window - 1
    end
  end
  fits = window - 1 < keep
end
if fits and max_tokens >= 0 then
  local total = tonumber(redis.call('HGET', KEYS[2], 'tok') or '0')
  fits = total - tokens <= math.max(max_tokens, tokens) - tokens
end

local t = now
if not fits then
  -- Slots planned to start after now have not been sent: they are checked when they
  -- are. Only unanswered slots ending after now can be such plans.
  local later = {}
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. fmt(now), '+inf')) do
    local info = redis.call('HGET', KEYS[2], 'f:' .. other)
    local start = info and tonumber(string.match(info, ' (%S+)$'))
    if start and start > now then
      later[other] = true
    end
  end

  local ends, counts, total = {}, {}, 0
  local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(now - period - 1), '+inf', 'WITHSCORES')
  for i = 1, #live, 2 do
    local other = live[i]
    local slot_end = tonumber(live[i + 1])
    if other ~= member and not later[other] and slot_end + period > now then
      ends[#ends + 1] = slot_end
      counts[#counts + 1] = tokens_of(other)
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
local hold = info and tonumber(string.match(info, '^(%S+)')) or (slot_end + max_flight)
redis.call('ZADD', KEYS[1], fmt(slot_end), member)
redis.call('ZADD', KEYS[4], fmt(slot_end), member)
redis.call('HSET', KEYS[2], 'f:' .. member, fmt(hold) .. ' ' .. fmt(t))
local ttl = math.ceil((hold + period - now) * 1000) + 1000
if redis.call('PTTL', KEYS[4]) < ttl then  -- the flight key may have been recreated
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return fmt(t - now)
