-- waitroom_poll.lua: a waiting crowd polling GET /events/queue/?queue_id=..., every
-- thread cycling through all the queue ids of BENCH_IDS (one a line) from its own offset,
-- so each id is polled about once per cycle by every thread. The requests are formatted
-- once, in init, so a request costs the load generator one table lookup.
--
-- BENCH_WR_MODE=healthz sends GET /healthz through the same machinery (a request() and
-- a response() that reads the body): the control that shows what the script itself costs.
--
-- The line the buyers see: an "admitted" answer carries the admission
-- "<event>.<ticket>.<until>.<signature>", and tickets are admitted in order (everyone
-- joined after the opening). BENCH_IDS is in ticket order, so each cycle sweeps the queue
-- from its head, and the highest ticket a thread has seen admitted rises once a sweep, in
-- a quick run of tickets as it crosses the room's admission line; the last of the run is
-- the line at that instant. Each thread notes the instant and ticket of that last rise as
-- its first sweep ends and at the end of the run; bench/waitroom.sh turns them into
-- admissions per minute as the pollers saw them. Printed as one line
-- "BENCH_WAITROOM {...}" when the run ends.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local reqs, n, i
-- globals, so that done() can read them with thread:get
top, first_t, first_top, last_t, last_top, admitted, waiting = 0, 0, 0, 0, 0, 0, 0

function init(args)
    reqs = {}
    if bench_env("BENCH_WR_MODE", "poll") == "healthz" then
        reqs[1] = wrk.format("GET", "/healthz")
    else
        for id in io.lines(bench_env("BENCH_IDS")) do
            reqs[#reqs + 1] = wrk.format("GET", "/events/queue/?queue_id=" .. id)
        end
    end
    n = #reqs
    assert(n > 0, "bench: no queue ids in " .. bench_env("BENCH_IDS"))
    i = 0
    top, first_t, first_top, last_t, last_top, admitted, waiting = 0, 0, 0, 0, 0, 0, 0
end

function request()
    i = i % n + 1
    if i == 1 and first_t == 0 and last_t > 0 then -- a sweep ended: its crossing is the first sample
        first_t, first_top = last_t, last_top
    end
    return reqs[i]
end

function response(status, headers, body)
    bench_count(status)
    if status ~= 200 then
        return
    end
    local ticket = body:match('"admission":"[%x%-]+%.(%d+)%.')
    if ticket == nil then
        if body:find('"waiting"', 1, true) then
            waiting = waiting + 1
        end
        return
    end
    admitted = admitted + 1
    ticket = tonumber(ticket)
    if ticket <= top then
        return
    end
    top = ticket
    last_t, last_top = bench_now_us(), top
end

function bench_done_extra(threads)
    local parts = {}
    for _, t in ipairs(threads) do
        parts[#parts + 1] = string.format('{"first_us":%d,"first_ticket":%d,"last_us":%d,"last_ticket":%d,"admitted":%d,"waiting":%d}',
            t:get("first_t"), t:get("first_top"), t:get("last_t"), t:get("last_top"), t:get("admitted"), t:get("waiting"))
    end
    io.write('BENCH_WAITROOM {"threads":[' .. table.concat(parts, ",") .. ']}\n')
end
