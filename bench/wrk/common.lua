-- common.lua: shared by every wrk script under bench/wrk/ (loaded with dofile).
--
-- Counts responses by status in each wrk thread and, when the run ends, prints
-- one line "BENCH_JSON {...}" that bench/lib.sh parses: requests, duration,
-- counts per status, socket errors and latency percentiles (p99.9 included,
-- which wrk's own summary lacks). Scripts that define their own response()
-- call bench_count(status) from it.
--
-- LuaJIT's ffi gives a wall clock in microseconds (bench_now_us), used by the
-- funnel to time payments against PostgreSQL's commit timestamps. A script
-- may define bench_done_extra(threads) to print more when the run ends.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
]]
local ts = ffi.new("bench_timespec_t")

function bench_now_us() -- CLOCK_REALTIME, comparable with PostgreSQL timestamps
    ffi.C.clock_gettime(0, ts)
    return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

-- Environment the harness passes to the scripts.
function bench_env(name, default)
    local v = os.getenv(name)
    if v == nil or v == "" then
        if default == nil then
            error("bench: environment variable " .. name .. " is required")
        end
        return default
    end
    return v
end

counts = {} -- per thread: status -> number of responses

function bench_count(status)
    counts[status] = (counts[status] or 0) + 1
end

function response(status, headers, body)
    bench_count(status)
end

local threads = {}
local next_id = 0

function setup(thread)
    next_id = next_id + 1
    thread:set("thread_id", next_id)
    table.insert(threads, thread)
end

local function json_number(x)
    if x ~= x or x == math.huge or x == -math.huge then
        return "null"
    end
    return string.format("%.3f", x)
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        local c = t:get("counts") or {}
        for status, n in pairs(c) do
            total[status] = (total[status] or 0) + n
        end
    end
    local parts = {}
    for status, n in pairs(total) do
        parts[#parts + 1] = string.format('"%d":%d', status, n)
    end
    table.sort(parts)
    local e = summary.errors
    local ms = function(us) return json_number(us / 1000) end
    io.write(string.format(
        'BENCH_JSON {"requests":%d,"duration_s":%s,"status":{%s},' ..
        '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
        '"latency_ms":{"p50":%s,"p90":%s,"p99":%s,"p999":%s,"max":%s,"mean":%s}}\n',
        summary.requests, json_number(summary.duration / 1e6), table.concat(parts, ","),
        e.connect, e.read, e.write, e.timeout,
        ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
        ms(latency:percentile(99.9)), ms(latency.max), ms(latency.mean)))
    if bench_done_extra then
        bench_done_extra(threads)
    end
end
