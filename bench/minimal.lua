#!lua name=tkbench
--[[
bench/minimal.lua: bench-only Redis Functions, loaded by bench/run into its own Redis
(never part of ticketd's library, lua/ticketd.lua).

bench_min_reserve is the "minimal reserve-like function" of issue 14, the floor a
reservation is compared with: exactly HGET the type's availability, INCR an id counter,
HINCRBY the availability down, HSET four fields of the hold, ZADD its deadline, XADD a
four-field outbox entry. No validation, no JSON, no expiry.
  KEYS  inv (hash), seq (counter), dl (sorted set), ob (stream); the hold is the hash
        KEYS[2] .. ':' .. id, in the same hash tag
  ARGV  avail field, amount, until_ms, event id
  ->    the new hold's id | {"ERR","insufficient"} when avail < amount
]]

local function bench_min_reserve(keys, args)
    local inv, seq, dl, ob = keys[1], keys[2], keys[3], keys[4]
    local field, n, until_ms, e = args[1], tonumber(args[2]), args[3], args[4]
    local avail = tonumber(redis.call('HGET', inv, field)) or 0
    if avail < n then
        return { 'ERR', 'insufficient' }
    end
    local id = redis.call('INCR', seq)
    redis.call('HINCRBY', inv, field, -n)
    redis.call('HSET', seq .. ':' .. id, 'e', e, 't', field, 'n', n, 'u', until_ms)
    redis.call('ZADD', dl, until_ms, id)
    redis.call('XADD', ob, '*', 'r', id, 'e', e, 't', field, 'n', n)
    return id
end

redis.register_function { function_name = 'bench_min_reserve', callback = bench_min_reserve, flags = {} }
