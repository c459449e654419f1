-- Charge the recipients of a transaction whose message has ended (END-OF-MESSAGE).
-- KEYS[1..3]: window, holds, transactions, as in outbound_check.lua
-- ARGV: now_ms, instance, recipient_count (Postfix's count of accepted recipients; -1: unknown)
-- Returns the number of recipients charged.
local now = tonumber(ARGV[1])
local instance = ARGV[2]
local accepted = tonumber(ARGV[3])
local reserved = tonumber(redis.call('HGET', KEYS[3], instance) or '0')
if accepted < 0 then
  accepted = reserved
end

local held = 0
for i = 1, reserved do
  local member = instance .. '#' .. i
  if redis.call('ZREM', KEYS[2], member) == 1 then
    if held < accepted then
      held = held + 1
    else
      -- Reserved here but refused later by Postfix: not charged.
      redis.call('ZREM', KEYS[1], member)
    end
  end
end
redis.call('HDEL', KEYS[3], instance)
-- Reservations that lapsed before the message ended were released; charge them now.
for i = held + 1, accepted do
  redis.call('ZADD', KEYS[1], now, instance .. '#late' .. i)
end
if accepted > held then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], 86400000)
  end
end
return accepted
