//! The Lua scripts that make multi-step Redis operations atomic and one
//! round trip each. Loaded once per server (`EVALSHA`, reloaded on
//! `NOSCRIPT`).
//!
//! Fencing values are compared as decimal strings (length, then bytes):
//! Lua numbers are doubles and would lose precision above 2^53.

use std::sync::LazyLock;

use redis::Script;

/// The consumer group every queue uses.
pub(crate) const GROUP: &str = "weir";

/// `receive` without waiting. KEYS: stream, dead letters. ARGV: consumer,
/// visibility timeout in ms, max, max deliveries. Returns a flat array
/// `id, payload, deliveries, ...`: reclaimed tasks first, then new ones.
/// Fails with `NOGROUP` (before changing anything) if the queue was
/// deleted since: the caller recreates the group and runs it again.
pub(crate) static RECEIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stream, dead, group = KEYS[1], KEYS[2], 'weir'
local consumer, min_idle = ARGV[1], ARGV[2]
local max, max_deliveries = tonumber(ARGV[3]), tonumber(ARGV[4])
local function payload_of(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'p' then return fields[i + 1] end
  end
  return ''
end
local out, n = {}, 0
local claimed = redis.call('XAUTOCLAIM', stream, group, consumer, min_idle, '0-0', 'COUNT', max)
for _, entry in ipairs(claimed[2]) do
  local id = entry[1]
  local payload = payload_of(entry[2])
  local count = redis.call('XPENDING', stream, group, id, id, 1)[1][4]
  if count > max_deliveries then
    redis.call('XADD', dead, '*', 'id', id, 'p', payload, 'n', count - 1)
    redis.call('XACK', stream, group, id)
    redis.call('XDEL', stream, id)
  else
    out[#out + 1] = id
    out[#out + 1] = payload
    out[#out + 1] = count
    n = n + 1
  end
end
if n < max then
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', max - n,
    'STREAMS', stream, '>')
  if read then
    for _, entry in ipairs(read[1][2]) do
      out[#out + 1] = entry[1]
      out[#out + 1] = payload_of(entry[2])
      out[#out + 1] = 1
    end
  end
end
return out
",
    )
});

/// `extend`. KEYS: stream. ARGV: consumer, id. Returns 1 if the consumer
/// held the task (its idle time is now 0), else 0. `XCLAIM ... JUSTID`
/// does not count a delivery.
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p = redis.pcall('XPENDING', KEYS[1], 'weir', ARGV[2], ARGV[2], 1)
if type(p) ~= 'table' or p.err or #p == 0 or p[1][2] ~= ARGV[1] then return 0 end
redis.call('XCLAIM', KEYS[1], 'weir', ARGV[1], 0, ARGV[2], 'JUSTID')
return 1
",
    )
});

/// `len`. KEYS: stream, dead letters. Returns `{ready, pending, dead}`.
/// Acked and dead-lettered entries are deleted from the stream, so every
/// entry in it is either ready or pending.
pub(crate) static DEPTH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local len = redis.call('XLEN', KEYS[1])
local pending = 0
local p = redis.pcall('XPENDING', KEYS[1], 'weir')
if type(p) == 'table' and not p.err then pending = p[1] end
local ready = len - pending
if ready < 0 then ready = 0 end
return {ready, pending, redis.call('XLEN', KEYS[2])}
",
    )
});

/// `Leases::acquire`. KEYS: lease. ARGV: holder, ttl ms. Returns `{1}` if
/// acquired (or renewed), else `{0, holder, remaining ms}`.
pub(crate) static LEASE_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1}
end
return {0, cur, redis.call('PTTL', KEYS[1])}
",
    )
});

/// `Leases::renew`. KEYS: lease. ARGV: holder, ttl ms. Returns 1 or 0.
pub(crate) static LEASE_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// `Leases::release`. KEYS: lease. ARGV: holder. Returns 1 or 0.
pub(crate) static LEASE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

/// `Fences::advance`. KEYS: fence. ARGV: value (canonical decimal), ttl
/// ms. Keeps the larger value and the longer remaining ttl; returns the
/// value in force.
pub(crate) static FENCE_ADVANCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur, v = redis.call('GET', KEYS[1]), ARGV[1]
if cur and (#cur > #v or (#cur == #v and cur >= v)) then v = cur end
local ttl = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left > ttl then ttl = left end
redis.call('SET', KEYS[1], v, 'PX', ttl)
return v
",
    )
});
