-- soldout.lua: keeps POSTing one-ticket reservations to an event that is sold
-- out (BENCH_EVENT, type BENCH_TYPE). Every answer should be 409; ticketd
-- answers most of them from its per-thread sold-out table without Redis.
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/events/reservation/"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"event_id":"%s","tickets":[{"type":"%s","amount":1}]}',
    bench_env("BENCH_EVENT"), bench_env("BENCH_TYPE", "GA"))
