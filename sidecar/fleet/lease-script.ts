/**
 * What the shared store runs: the lease script, the membership script, and
 * the keys they touch.
 *
 * One hash per counter and window holds the fleet's totals per unit (`s<u>`
 * spent, `h<u>` held in leases) and one record per sidecar (`p:<id>`: what
 * it last said it spent, what it holds, when it last spoke, by Redis' own
 * clock). A sidecar always sends absolute figures (all it spent in the
 * window, what it wants to hold), so a sync is idempotent: a reply lost to a
 * timeout, a retry, or a Redis that restarted empty (every sidecar's next
 * sync adds back all it spent) all converge on the same count. A grant never
 * takes the fleet past its limit: spent + held ≤ limit, except by what
 * answers used beyond their reservations. A sidecar silent for `stale` ms
 * loses what it held (its spending stays counted), so a dead pod's lease
 * returns to the fleet.
 *
 * A store that lost its data (FLUSHALL, a restart without persistence, a
 * failover to a replica behind) is told by what each sidecar remembers: the
 * fleet's spent as the store last told it (`floor`) and its own spent as the
 * store last confirmed it (`confirmed`). Before granting anything, a count
 * under floor + (spent − confirmed) is raised to it; the raise (`b<u>`, spent
 * no record accounts for) is taken back as the sidecars whose records were
 * lost report again, so the count is never above what was spent. A sidecar
 * whose record is lost also keeps what it has in flight held. The reply's
 * last figure is 1 when the store had lost what this sidecar told it.
 */
import { redisTag } from '../../lib/index.js';

export const LEASE_SCRIPT = `
local key = KEYS[1]
local me = 'p:' .. ARGV[1]
local ttl = tonumber(ARGV[2])
local stale = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function parse(text)
  local r = {}
  if text then for v in string.gmatch(text, '[^ ]+') do r[#r + 1] = tonumber(v) end end
  for i = #r + 1, 2 * n + 1 do r[i] = 0 end
  return r
end
local function format(r)
  local parts = {}
  for i = 1, 2 * n + 1 do parts[i] = string.format('%.0f', r[i]) end
  return table.concat(parts, ' ')
end
local sweep = tonumber(redis.call('HGET', key, 'sweep') or '0')
if now - sweep >= stale / 2 then
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'p:' and f ~= me then
      local r = parse(all[i + 1])
      if r[2 * n + 1] < now - stale then
        local changed = false
        for u = 1, n do
          if r[2 * u] > 0 then
            redis.call('HINCRBY', key, 'h' .. u, -r[2 * u])
            r[2 * u] = 0
            changed = true
          end
        end
        if changed then redis.call('HSET', key, f, format(r)) end
      end
    end
  end
  redis.call('HSET', key, 'sweep', now)
end
local text = redis.call('HGET', key, me)
local fresh = not text
local r = parse(text)
local out = {}
local lost = 0
for u = 1, n do
  local a = 4 + (u - 1) * 6
  local limit, mine, keep, want = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local floor, confirmed = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local b = tonumber(redis.call('HGET', key, 'b' .. u) or '0')
  if r[2 * u - 1] < confirmed then lost = 1 end
  local absorbed = math.min(b, math.max(0, confirmed - r[2 * u - 1]))
  b = b - absorbed
  local spent = tonumber(redis.call('HGET', key, 's' .. u) or '0') - absorbed + mine - r[2 * u - 1]
  local least = floor + mine - confirmed
  if spent < least then
    b = b + least - spent
    spent = least
    lost = 1
  end
  local held = math.max(0, tonumber(redis.call('HGET', key, 'h' .. u) or '0') - r[2 * u])
  local h = want
  if limit >= 0 then
    local kept = keep
    if not fresh then kept = math.min(keep, r[2 * u]) end
    h = math.max(0, math.min(want, limit - spent - held), kept)
  end
  held = held + h
  redis.call('HSET', key, 's' .. u, string.format('%.0f', spent), 'h' .. u, string.format('%.0f', held), 'b' .. u, string.format('%.0f', b))
  r[2 * u - 1] = mine
  r[2 * u] = h
  out[#out + 1] = h
  out[#out + 1] = spent
  out[#out + 1] = held
end
r[2 * n + 1] = now
redis.call('HSET', key, me, format(r))
redis.call('PEXPIRE', key, ttl)
out[#out + 1] = lost
return out
`;

/** Counts the sidecars that spoke in the last `stale` ms, this one included. */
export const MEMBERSHIP_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 4)
return redis.call('ZCARD', KEYS[1])
`;

/** The part of every key that names the policy (its namespace/name from the controller; a local file's, see policy-file.ts). */
export const policyTag = (policy: string) => redisTag(policy);

/** The hash of one counter (`what`: budget/policy, budget/upstream/<name>, rate/<name>) in the window starting at `windowStart`. */
export const counterKey = (policy: string, what: string, windowStart: number) => `breakwater:fleet:${policyTag(policy)}:${what}:${windowStart}`;

/** The sorted set of the sidecars that speak for a policy. */
export const membersKey = (policy: string) => `breakwater:fleet:${policyTag(policy)}:members`;
