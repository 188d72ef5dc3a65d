#!lua name=ticketd
--[[
ticketd.lua: the Redis Functions library that owns every inventory change of
ticketd (Redis 7.0, loaded with FUNCTION LOAD REPLACE, embedded in the binary).

Every function checks everything first and writes only after that, so a call
that is refused changes nothing. The one exception is the lazy expiry of holds
that are already past their deadline (tk_avail, tk_reserve, tk_get, tk_cancel).
Those holds would be released anyway, so releasing them early is not a change a
caller could tell apart from the sweeper having run. Time comes from
redis.call('TIME'), in unix milliseconds.

KEY LAYOUT (ready for Redis Cluster: all keys of one call share one hash tag)
  A shard s is the first 4 lower-case hex characters of the event uuid E.
  Reservation ids R start with the shard of their event, so every key can be
  built from R alone.
  tk:{s}:inv  hash, the inventory of every event in the shard. E = event uuid,
              T = ticket type name:
                E:T:cap  E:T:avail  E:T:held  E:T:sold  (ticket counts)
                E:T:price        integer minor units (cents)
                E:types          cjson array of type names in creation order
                E:date           event date, unix ms
                E:cancelled      tickets returned by cancellation
                E:expired        tickets returned by expiry
                E:revenue        minor units (kept by payments, later)
  tk:{s}:res  hash, R -> reservation blob (cjson):
                {"e":E, "st":"PENDING"|"PAYING"|"COMPLETED"|"CANCELLED",
                 "c":created_ms, "u":until_ms,
                 "l":[[T,n],...]               merged lines, first-seen order
                 "t":[[ticket_uuid,T,price],...] one entry per ticket}
  tk:{s}:dl   sorted set of PENDING holds: member R, score until_ms.
              (A PAYING reservation is not in dl, so expiry never races a payment.)

INVARIANT, per event and type, at every instant: avail + held + sold == cap.

FUNCTIONS. KEYS are always tk:{s}:inv, tk:{s}:res, tk:{s}:dl, in that order.
A malformed call (wrong keys, an id outside the keys' shard, non-numeric control
arguments, a wrong argument count) is a bug in the caller. It gets an error
reply, "ERR ticketd: ...". Outcomes that come from user input are arrays,
{"OK",...} or {"ERR",reason,...}.

  tk_event_init  ARGV E, date_ms, ntypes, then ntypes triples T, cap, price_minor
                 Idempotent, because every field is set with HSETNX.
                 -> integer ntypes
  tk_avail       ARGV E                          (writes: lazy expiry, <= 200)
                 -> {T1, avail1, T2, avail2, ...} in E:types order, avail as
                    integers; {} when the event is unknown
  tk_reserve     ARGV E, R, hold_ms, max_per_type, nlines, nlines pairs T, amount,
                 then one ticket uuid per ticket, in request-line order
                 -> {"OK", created_ms, until_ms}
                  | {"ERR","bad_amount",T}   amount not an integer >= 1
                  | {"ERR","empty"}          nlines == 0
                  | {"ERR","no_event"} | {"ERR","past"} | {"ERR","exists"}
                  | {"ERR","unknown_type",T} | {"ERR","limit",T}
                  | {"ERR","insufficient",T,avail}
                 Checked in that order. Lines with the same type are merged
                 (amounts summed, first-seen order) before the type checks. The
                 type checks are unknown_type over all lines, then limit over all
                 lines, then insufficient for the first short line. The number of
                 ticket uuids (it must equal sum(amount)) is checked only once
                 every business check has passed, so a refused request may carry
                 fewer uuids.
  tk_get         ARGV R   (a PENDING hold at or past its deadline expires first)
                 -> {"OK", blob_json} | {"ERR","not_found"}
  tk_cancel      ARGV R   (same lazy expiry first; only PENDING can be cancelled)
                 -> {"OK"} | {"ERR","not_found"} | {"ERR","state",current_status}
  tk_expire      ARGV limit
                 Releases up to `limit` holds of the shard whose deadline <= now.
                 dl entries that are no longer PENDING are only removed.
                 -> integer number expired
  tk_stats       ARGV E   (flags no-writes, so it can be called with FCALL_RO)
                 -> {} when the event is unknown, else the flat array
                    {capacity, available, held, sold, cancelled, expired, revenue,
                     ntypes, T1, cap1, avail1, held1, sold1, T2, cap2, ...}
                    (totals over all types first, then 5 entries per type in
                     E:types order; everything but the names is an integer)
]]

local EXPIRE_BATCH = 200 -- lazy expiry bound per call

-- parse_int returns the integer that s spells in plain decimal. It returns nil
-- for anything else ('1.5', '1e3', ' 1', '0x10', 'abc', more than 15 digits)
-- and for values below min.
local function parse_int(s, min)
    if type(s) ~= 'string' then
        return nil
    end
    local digits = string.match(s, '^%-?(%d+)$')
    if not digits or #digits > 15 then
        return nil
    end
    local n = tonumber(s)
    if not n or n ~= math.floor(n) then
        return nil
    end
    if min and n < min then
        return nil
    end
    return n
end

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function bad_call(msg)
    return redis.error_reply('ERR ticketd: ' .. msg)
end

-- keys_shard checks that KEYS are exactly inv, res, dl of one shard and
-- returns that shard. An id whose prefix is not this shard would be stored
-- where no later call could find it.
local function keys_shard(keys)
    if #keys ~= 3 then
        return nil
    end
    local s = string.match(keys[1], '^tk:{([0-9a-f][0-9a-f][0-9a-f][0-9a-f])}:inv$')
    if not s or keys[2] ~= 'tk:{' .. s .. '}:res' or keys[3] ~= 'tk:{' .. s .. '}:dl' then
        return nil
    end
    return s
end

local function in_shard(id, s)
    return type(id) == 'string' and #id > 4 and string.sub(id, 1, 4) == s
end

-- release owns the PENDING -> CANCELLED transition, for cancellation and for
-- expiry alike. Every ticket goes back from held to avail, the event counter
-- `counter` ('cancelled' or 'expired') grows by the number of tickets, and the
-- hold leaves the deadline set. The caller has checked that rec is PENDING.
local function release(keys, rid, rec, counter)
    local inv = keys[1]
    local total = 0
    for _, line in ipairs(rec.l) do
        local t, n = line[1], line[2]
        redis.call('HINCRBY', inv, rec.e .. ':' .. t .. ':avail', n)
        redis.call('HINCRBY', inv, rec.e .. ':' .. t .. ':held', -n)
        total = total + n
    end
    redis.call('HINCRBY', inv, rec.e .. ':' .. counter, total)
    rec.st = 'CANCELLED'
    redis.call('HSET', keys[2], rid, cjson.encode(rec))
    redis.call('ZREM', keys[3], rid)
    return total
end

-- expire_due releases up to `limit` holds of the shard whose deadline has
-- passed. It is the sweeper's work. Calls that read or change inventory also
-- run it, bounded, so figures are right even when the sweeper lags. Deadline
-- entries whose reservation is gone or no longer PENDING are dropped.
local function expire_due(keys, now, limit)
    local due = redis.call('ZRANGEBYSCORE', keys[3], '-inf', now, 'LIMIT', 0, limit)
    local n = 0
    for _, rid in ipairs(due) do
        local blob = redis.call('HGET', keys[2], rid)
        local rec = blob and cjson.decode(blob)
        if rec and rec.st == 'PENDING' then
            release(keys, rid, rec, 'expired')
            n = n + 1
        else
            redis.call('ZREM', keys[3], rid)
        end
    end
    return n
end

-- load_live returns the decoded reservation rid, or nil. A PENDING hold that is
-- at or past its deadline is expired first, so a hold reads as CANCELLED from
-- that instant on, whether or not the sweeper has run.
local function load_live(keys, rid)
    if type(rid) ~= 'string' then
        return nil
    end
    local blob = redis.call('HGET', keys[2], rid)
    if not blob then
        return nil
    end
    local rec = cjson.decode(blob)
    if rec.st == 'PENDING' and now_ms() >= rec.u then
        release(keys, rid, rec, 'expired')
        return rec, cjson.encode(rec)
    end
    return rec, blob
end

local function tk_event_init(keys, args)
    local s = keys_shard(keys)
    if not s then
        return bad_call('keys must be tk:{s}:inv, tk:{s}:res, tk:{s}:dl')
    end
    local e = args[1]
    if not in_shard(e, s) then
        return bad_call('event id not in the keys\' shard')
    end
    local date = parse_int(args[2], 0)
    local ntypes = parse_int(args[3], 1)
    if not date or not ntypes or #args ~= 3 + 3 * ntypes then
        return bad_call('tk_event_init E date_ms ntypes {T cap price}*ntypes')
    end
    local names, seen = {}, {}
    for i = 1, ntypes do
        local t = args[1 + 3 * i]
        if t == '' or seen[t] or not parse_int(args[2 + 3 * i], 0) or not parse_int(args[3 + 3 * i], 0) then
            return bad_call('type ' .. i .. ': empty or duplicate name, or bad cap/price')
        end
        seen[t] = true
        names[i] = t
    end

    local inv = keys[1]
    for i = 1, ntypes do
        local p = e .. ':' .. names[i] .. ':'
        local cap = args[2 + 3 * i]
        redis.call('HSETNX', inv, p .. 'cap', cap)
        redis.call('HSETNX', inv, p .. 'avail', cap)
        redis.call('HSETNX', inv, p .. 'held', 0)
        redis.call('HSETNX', inv, p .. 'sold', 0)
        redis.call('HSETNX', inv, p .. 'price', args[3 + 3 * i])
    end
    redis.call('HSETNX', inv, e .. ':types', cjson.encode(names))
    redis.call('HSETNX', inv, e .. ':date', args[2])
    redis.call('HSETNX', inv, e .. ':cancelled', 0)
    redis.call('HSETNX', inv, e .. ':expired', 0)
    redis.call('HSETNX', inv, e .. ':revenue', 0)
    return ntypes
end

local function event_types(inv, e)
    if type(e) ~= 'string' then
        return nil
    end
    local types = redis.call('HGET', inv, e .. ':types')
    return types and cjson.decode(types)
end

local function tk_avail(keys, args)
    if not keys_shard(keys) then
        return bad_call('keys must be tk:{s}:inv, tk:{s}:res, tk:{s}:dl')
    end
    expire_due(keys, now_ms(), EXPIRE_BATCH)
    local e = args[1]
    local types = event_types(keys[1], e)
    if not types then
        return {}
    end
    local fields = {}
    for i, t in ipairs(types) do
        fields[i] = e .. ':' .. t .. ':avail'
    end
    local vals = redis.call('HMGET', keys[1], unpack(fields))
    local out = {}
    for i, t in ipairs(types) do
        out[#out + 1] = t
        out[#out + 1] = tonumber(vals[i]) or 0
    end
    return out
end

-- tk_reserve holds tickets of one or more types of an event, all of them or
-- none. The checks run in the order the HTTP contract gives its errors:
-- malformed amounts, then the event, then the types, the limit and the stock.
local function tk_reserve(keys, args)
    local s = keys_shard(keys)
    if not s then
        return bad_call('keys must be tk:{s}:inv, tk:{s}:res, tk:{s}:dl')
    end
    local e, rid = args[1], args[2]
    if not in_shard(e, s) or not in_shard(rid, s) then
        return bad_call('event or reservation id not in the keys\' shard')
    end
    local hold = parse_int(args[3], 1)
    local max = parse_int(args[4], 1)
    local nlines = parse_int(args[5], 0)
    if not hold or not max or not nlines or #args < 5 + 2 * nlines then
        return bad_call('tk_reserve E R hold_ms max_per_type nlines {T amount}*nlines ticket_ids...')
    end

    -- Malformed input comes first. Then merge lines of the same type.
    if nlines == 0 then
        return { 'ERR', 'empty' }
    end
    local lines, order, merged, ntickets = {}, {}, {}, 0
    for i = 1, nlines do
        local t = args[4 + 2 * i]
        local n = parse_int(args[5 + 2 * i], 1)
        if not n then
            return { 'ERR', 'bad_amount', t }
        end
        lines[i] = { t, n }
        ntickets = ntickets + n
        if merged[t] then
            merged[t] = merged[t] + n
        else
            merged[t] = n
            order[#order + 1] = t
        end
    end

    local inv = keys[1]
    local now = now_ms()
    expire_due(keys, now, EXPIRE_BATCH)

    local meta = redis.call('HMGET', inv, e .. ':types', e .. ':date')
    if not meta[1] then
        return { 'ERR', 'no_event' }
    end
    local date = tonumber(meta[2])
    if not date or date <= now then
        return { 'ERR', 'past' }
    end
    if redis.call('HEXISTS', keys[2], rid) == 1 then
        return { 'ERR', 'exists' }
    end

    local fields = {}
    for _, t in ipairs(order) do
        local p = e .. ':' .. t .. ':'
        fields[#fields + 1] = p .. 'cap'
        fields[#fields + 1] = p .. 'avail'
        fields[#fields + 1] = p .. 'price'
    end
    local vals = redis.call('HMGET', inv, unpack(fields))
    for i, t in ipairs(order) do
        if not vals[3 * i - 2] then
            return { 'ERR', 'unknown_type', t }
        end
    end
    for _, t in ipairs(order) do
        if merged[t] > max then
            return { 'ERR', 'limit', t }
        end
    end
    local price = {}
    for i, t in ipairs(order) do
        local avail = tonumber(vals[3 * i - 1]) or 0
        if avail < merged[t] then
            return { 'ERR', 'insufficient', t, avail }
        end
        price[t] = tonumber(vals[3 * i]) or 0
    end
    if #args ~= 5 + 2 * nlines + ntickets then
        return bad_call('expected ' .. ntickets .. ' ticket ids')
    end

    -- Every check passed: write.
    local held, tickets = {}, {}
    for i, t in ipairs(order) do
        local p = e .. ':' .. t .. ':'
        redis.call('HINCRBY', inv, p .. 'avail', -merged[t])
        redis.call('HINCRBY', inv, p .. 'held', merged[t])
        held[i] = { t, merged[t] }
    end
    local idx = 5 + 2 * nlines
    for _, line in ipairs(lines) do
        for _ = 1, line[2] do
            idx = idx + 1
            tickets[#tickets + 1] = { args[idx], line[1], price[line[1]] }
        end
    end
    local until_ms = now + hold
    local rec = { e = e, st = 'PENDING', c = now, u = until_ms, l = held, t = tickets }
    redis.call('HSET', keys[2], rid, cjson.encode(rec))
    redis.call('ZADD', keys[3], until_ms, rid)
    return { 'OK', now, until_ms }
end

local function tk_get(keys, args)
    if not keys_shard(keys) then
        return bad_call('keys must be tk:{s}:inv, tk:{s}:res, tk:{s}:dl')
    end
    local rec, blob = load_live(keys, args[1])
    if not rec then
        return { 'ERR', 'not_found' }
    end
    return { 'OK', blob }
end

local function tk_cancel(keys, args)
    if not keys_shard(keys) then
        return bad_call('keys must be tk:{s}:inv, tk:{s}:res, tk:{s}:dl')
    end
    local rid = args[1]
    local rec = load_live(keys, rid)
    if not rec then
        return { 'ERR', 'not_found' }
    end
    if rec.st ~= 'PENDING' then
        return { 'ERR', 'state', rec.st }
    end
    release(keys, rid, rec, 'cancelled')
    return { 'OK' }
end

local function tk_expire(keys, args)
    if not keys_shard(keys) then
        return bad_call('keys must be tk:{s}:inv, tk:{s}:res, tk:{s}:dl')
    end
    local limit = parse_int(args[1], 1)
    if not limit then
        return bad_call('tk_expire limit (integer >= 1)')
    end
    return expire_due(keys, now_ms(), limit)
end

local function tk_stats(keys, args)
    if not keys_shard(keys) then
        return bad_call('keys must be tk:{s}:inv, tk:{s}:res, tk:{s}:dl')
    end
    local e = args[1]
    local types = event_types(keys[1], e)
    if not types then
        return {}
    end
    local fields = { e .. ':cancelled', e .. ':expired', e .. ':revenue' }
    for _, t in ipairs(types) do
        local p = e .. ':' .. t .. ':'
        fields[#fields + 1] = p .. 'cap'
        fields[#fields + 1] = p .. 'avail'
        fields[#fields + 1] = p .. 'held'
        fields[#fields + 1] = p .. 'sold'
    end
    local vals = redis.call('HMGET', keys[1], unpack(fields))
    local cap, avail, held, sold = 0, 0, 0, 0
    local per = {}
    for i, t in ipairs(types) do
        local b = 3 + 4 * (i - 1)
        local c, a, h, so = tonumber(vals[b + 1]) or 0, tonumber(vals[b + 2]) or 0, tonumber(vals[b + 3]) or 0,
            tonumber(vals[b + 4]) or 0
        cap, avail, held, sold = cap + c, avail + a, held + h, sold + so
        for _, v in ipairs({ t, c, a, h, so }) do
            per[#per + 1] = v
        end
    end
    local out = { cap, avail, held, sold, tonumber(vals[1]) or 0, tonumber(vals[2]) or 0, tonumber(vals[3]) or 0, #types }
    for _, v in ipairs(per) do
        out[#out + 1] = v
    end
    return out
end

redis.register_function { function_name = 'tk_event_init', callback = tk_event_init, flags = {} }
redis.register_function { function_name = 'tk_avail', callback = tk_avail, flags = {} }
redis.register_function { function_name = 'tk_reserve', callback = tk_reserve, flags = {} }
redis.register_function { function_name = 'tk_get', callback = tk_get, flags = {} }
redis.register_function { function_name = 'tk_cancel', callback = tk_cancel, flags = {} }
redis.register_function { function_name = 'tk_expire', callback = tk_expire, flags = {} }
redis.register_function { function_name = 'tk_stats', callback = tk_stats, flags = { 'no-writes' } }
