-- Check one recipient of an authenticated user against the sliding window and, if it fits,
-- reserve it for this SMTP transaction, atomically, so mx nodes together never exceed the limit.
-- KEYS[1]: window (zset: member -> time of its RCPT in ms), reserved and charged recipients
-- KEYS[2]: holds (zset: member -> time its reservation lapses), the not yet charged ones
-- KEYS[3]: transactions (hash: instance -> recipients reserved so far)
-- KEYS[4]: hits (zset: instance -> time it was refused), transactions refused in the window
-- ARGV: now_ms, the user's class ('' for the default), instance, hold_ms, default_limit,
--       default_window_ms, then per class of the settings: name, limit, window_ms
-- Returns {'ok', used, limit, window_ms, 0, 0, class}
--      or {'limited', used, limit, window_ms, retry_after_ms, hits, class, new_hit}
local now = tonumber(ARGV[1])
local instance = ARGV[3]
local hold = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local class = 'default'

local wanted = ARGV[2]
if wanted ~= '' then
  for i = 7, #ARGV, 3 do
    if ARGV[i] == wanted then
      class, limit, window = wanted, tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
      break
    end
  end
end

-- Reservations of transactions that never ended are released, not charged.
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(lapsed) do
  redis.call('ZREM', KEYS[1], member)
end
if #lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
-- A recipient is in the window while now - its time < window.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])

if used >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local retry_after = tonumber(oldest[2]) + window - now
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  local new_hit = redis.call('ZADD', KEYS[4], now, instance)
  redis.call('PEXPIRE', KEYS[4], window)
  local hits = redis.call('ZCARD', KEYS[4])
  return {'limited', used, limit, window, retry_after, hits, class, new_hit}
end

local n = redis.call('HINCRBY', KEYS[3], instance, 1)
local member = instance .. '#' .. n
redis.call('ZADD', KEYS[1], now, member)
redis.call('ZADD', KEYS[2], now + hold, member)
local keep = math.max(window, hold)
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], hold)
redis.call('PEXPIRE', KEYS[3], hold)
return {'ok', used + 1, limit, window, 0, 0, class}
