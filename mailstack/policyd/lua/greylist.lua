-- One greylisting decision, atomically, so two mx nodes see one history of a triplet.
-- KEYS[1]: the triplet (hash: first = time of the first attempt in ms, passed = time it passed)
-- KEYS[2]: the client network's count of passed retries
-- ARGV: now_ms, delay_ms, retry_window_ms, expiry_ms, auto_allow_after
-- Returns {verdict, number}: {'network', passes} | {'known', 0} | {'new', wait_ms}
--   | {'early', wait_ms} | {'passed', passes}
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local retry_window = tonumber(ARGV[3])
local expiry = tonumber(ARGV[4])
local auto_allow_after = tonumber(ARGV[5])

if auto_allow_after > 0 then
  local passes = tonumber(redis.call('GET', KEYS[2]) or '0')
  if passes >= auto_allow_after then
    redis.call('PEXPIRE', KEYS[2], expiry)
    return {'network', passes}
  end
end

local first = redis.call('HGET', KEYS[1], 'first')
if not first or now - tonumber(first) > retry_window then
  -- Unknown, or its retry came too late: start over.
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'first', now)
  redis.call('PEXPIRE', KEYS[1], retry_window)
  return {'new', delay}
end
if redis.call('HEXISTS', KEYS[1], 'passed') == 1 then
  redis.call('PEXPIRE', KEYS[1], expiry)
  return {'known', 0}
end
local waited = now - tonumber(first)
if waited < delay then
  return {'early', delay - waited}
end
redis.call('HSET', KEYS[1], 'passed', now)
redis.call('PEXPIRE', KEYS[1], expiry)
local passes = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], expiry)
return {'passed', passes}
