-- waitroom_join.lua: POST /events/queue/ for event BENCH_EVENT, to build the waiting
-- crowd of the waiting-room scenario. Each thread appends the queue ids it is handed to
-- BENCH_OUT_DIR/join-<thread>.txt, one a line, and stops once it has BENCH_JOIN_QUOTA
-- of them (wrk itself still runs out its -d; bench/waitroom.sh calls it in short rounds).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/events/queue/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"event_id":"' .. bench_env("BENCH_EVENT") .. '"}'

local out, quota, got

function init(args)
    out = assert(io.open(bench_env("BENCH_OUT_DIR") .. "/join-" .. thread_id .. ".txt", "a"))
    out:setvbuf("line")
    quota = tonumber(bench_env("BENCH_JOIN_QUOTA"))
    got = 0
end

function response(status, headers, body)
    bench_count(status)
    if got >= quota then
        return
    end
    local id = status == 201 and body:match('"queue_id":"([^"]+)"')
    if id then
        out:write(id, "\n")
        got = got + 1
        if got >= quota then
            wrk.thread:stop()
        end
    end
end
