-- funnel.lua: whole purchases, one session after another on each connection:
--   GET /events/event/ -> POST /events/event/ -> POST /events/reservation/ (1-2 tickets)
--   -> PUT /events/reservation/ (card 4242424242424242)
--   -> GET /transactions/list/?transaction_id=... every BENCH_POLL_MS until COMPLETED.
-- wrk keeps one Lua state per thread, not per connection, so the harness runs this
-- with as many threads as connections (-t N -c N): each thread is one shopper and
-- every response answers that thread's last request.
--
-- Each completed purchase is one line in BENCH_OUT_DIR/funnel-<thread>.tsv:
--   reservation_id  transaction_id  t_put_us  t_completed_us
-- (t_put_us: the PUT was answered 202; t_completed_us: the first poll that read
-- COMPLETED; wall clock, microseconds). bench/lib.sh joins these with
-- PostgreSQL's commit timestamps to get the persistence lag.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local event = bench_env("BENCH_EVENT")
local ttype = bench_env("BENCH_TYPE", "GA")
local poll_ms = tonumber(bench_env("BENCH_POLL_MS", "20"))
local card = bench_env("BENCH_CARD", "4242424242424242")
local json = { ["Content-Type"] = "application/json" }

local state = "list"   -- the step whose request goes out next
local rid, tid, t_put  -- the current session
local out
-- Flat tables only: wrk 4.1 crashes copying nested tables between Lua states.
stats = { completed = 0, payment_errors = 0, reserve_409 = 0 }
unexpected = {} -- "step:status" -> count

function init(args)
    out = assert(io.open(bench_env("BENCH_OUT_DIR") .. "/funnel-" .. thread_id .. ".tsv", "w"))
    out:setvbuf("line") -- wrk never closes a thread's Lua state: write through
    math.randomseed(thread_id * 7919 + os.time())
end

function request()
    if state == "list" then
        return wrk.format("GET", "/events/event/")
    elseif state == "detail" then
        return wrk.format("POST", "/events/event/", json, string.format('{"event_id":"%s"}', event))
    elseif state == "reserve" then
        return wrk.format("POST", "/events/reservation/", json,
            string.format('{"event_id":"%s","tickets":[{"type":"%s","amount":%d}]}', event, ttype, math.random(1, 2)))
    elseif state == "pay" then
        return wrk.format("PUT", "/events/reservation/", json,
            string.format('{"reservation_id":"%s","card":"%s"}', rid, card))
    else -- poll
        return wrk.format("GET", "/transactions/list/?transaction_id=" .. tid)
    end
end

function delay()
    return state == "poll" and poll_ms or 0
end

local function unexpected(status)
    local key = state .. ":" .. status
    unexpected[key] = (unexpected[key] or 0) + 1
    state = "list" -- start a new session
end

function response(status, headers, body)
    bench_count(status)
    if state == "list" then
        if status == 200 then state = "detail" else unexpected(status) end
    elseif state == "detail" then
        if status == 200 then state = "reserve" else unexpected(status) end
    elseif state == "reserve" then
        rid = status == 201 and body:match('"reservation_id"%s*:%s*"([^"]+)"')
        if rid then
            state = "pay"
        elseif status == 409 then
            stats.reserve_409 = stats.reserve_409 + 1
            state = "list"
        else
            unexpected(status)
        end
    elseif state == "pay" then
        tid = status == 202 and body:match('"transaction_id"%s*:%s*"([^"]+)"')
        if tid then
            t_put = bench_now_us()
            state = "poll"
        else
            unexpected(status)
        end
    else -- poll
        local st = status == 200 and body:match('"status"%s*:%s*"(%u+)"')
        if st == "COMPLETED" then
            out:write(string.format("%s\t%s\t%.0f\t%.0f\n", rid, tid, t_put, bench_now_us()))
            stats.completed = stats.completed + 1
            state = "list"
        elseif st == "ERROR" then
            stats.payment_errors = stats.payment_errors + 1
            state = "list"
        elseif st ~= "PENDING" then
            unexpected(status)
        end
    end
end

function bench_done_extra(threads)
    local completed, errors, r409, unexp = 0, 0, 0, {}
    for _, t in ipairs(threads) do
        local s = t:get("stats")
        completed = completed + s.completed
        errors = errors + s.payment_errors
        r409 = r409 + s.reserve_409
        for k, n in pairs(t:get("unexpected")) do
            unexp[k] = (unexp[k] or 0) + n
        end
    end
    local parts = {}
    for k, n in pairs(unexp) do
        parts[#parts + 1] = string.format('"%s":%d', k, n)
    end
    io.write(string.format(
        'BENCH_FUNNEL {"completed":%d,"payment_errors":%d,"reserve_409":%d,"unexpected":{%s}}\n',
        completed, errors, r409, table.concat(parts, ",")))
end
