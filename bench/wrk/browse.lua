-- browse.lua: what a visitor does before buying, alternating one to one:
-- GET /events/event/ (the first page, served from ticketd's in-memory catalog)
-- and POST /events/event/ {"event_id"} (the event with live tickets_left, one
-- Redis round trip). Both requests are built once per thread. BENCH_BROWSE=list or
-- detail sends only that one (bench/run measures each alone as well).
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
local list, detail
local n = 0
local mode = os.getenv("BENCH_BROWSE") or "mix"

function init(args)
    list = wrk.format("GET", "/events/event/")
    detail = wrk.format("POST", "/events/event/", { ["Content-Type"] = "application/json" },
        string.format('{"event_id":"%s"}', bench_env("BENCH_EVENT")))
end

function request()
    n = n + 1
    if mode == "list" then
        return list
    elseif mode == "detail" or n % 2 == 0 then
        return detail
    end
    return list
end
