-- Steps on a ledger's window shared by the scripts, which are loaded with this file
-- in front of them (see RedisStore). The layout is described in acquire.lua.

-- The end of the earliest unanswered slot (math.huge: none is unanswered).
local function first_unanswered(slots)
  local first = redis.call('ZREVRANGEBYSCORE', slots, '(0', '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return first[2] and -tonumber(first[2]) or math.huge
end

-- An unanswered request may still be on its way to the server: its slot ends no
-- earlier than now, until it is given up (max flight after it was due to end; then
-- it ends as it stands). Returns the new first unanswered end, and whether `member`
-- (optional) was given up.
local function hold_late(slots, meta, now, max_flight, member)
  local given_up = false
  local late = redis.call('ZRANGEBYSCORE', slots, '(' .. string.format('%.17g', -now), '(0',
    'WITHSCORES')
  for i = 1, #late, 2 do
    local entry = late[i]
    local slot = string.sub(entry, 2)
    local held = redis.call('HGET', meta, slot)
    local hold = held and tonumber(held) or max_flight - tonumber(late[i + 1])
    -- XX CH: 2 when the slot and its entry both moved (a missing slot is not re-added).
    if hold <= now or redis.call('ZADD', slots, 'XX', 'CH', now, slot, -now, entry) < 2 then
      redis.call('ZREM', slots, entry)
      redis.call('HDEL', meta, slot, entry)
      if slot == member then
        given_up = true
      end
    elseif not held then
      redis.call('HSET', meta, slot, hold)  -- its end moved: keep when it was due
    end
  end
  return first_unanswered(slots), given_up
end

-- Remove the slots that left every future window; returns the running token total
-- without them. One second of slack: where it matters the callers apply the exact
-- rule (end + period <= t).
local function trim_gone(slots, now, period, total)
  local cutoff = now - period - 1
  local gone = redis.call('ZRANGEBYSCORE', slots, '(0', cutoff)
  if #gone > 0 then
    for i = 1, #gone do
      total = total - tonumber(string.match(gone[i], '|(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', slots, '(0', cutoff)
  end
  return total
end

