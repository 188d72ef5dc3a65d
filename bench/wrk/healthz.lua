-- healthz.lua: GET /healthz (one Redis PING per request inside ticketd). The
-- reference rate the other HTTP scenarios are compared with.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/healthz"
