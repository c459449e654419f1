-- Count one message of a user the outbound scan refused, within a sliding window, and keep the
-- last few reports as evidence.
-- KEYS[1]: refusals (zset: member -> time in ms); KEYS[2]: recent reports (list, newest first)
-- ARGV: now_ms, window_ms, member, report (JSON), reports kept
-- Returns {refusals in the window, the kept reports}
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('PEXPIRE', KEYS[2], window)
return {redis.call('ZCARD', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
