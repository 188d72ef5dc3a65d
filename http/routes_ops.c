/*
 * Operations routes. GET /healthz answers 200 {"status":"ok"} when this process's
 * Redis connection answers a PING and the refresher's last PostgreSQL check passed,
 * and 503 naming what is down otherwise. GET /metrics renders the Prometheus text
 * format from every thread's counters.
 */
#include "engine/metrics.h"
#include "engine/refresher.h"
#include "engine/redis_conn.h"
#include "http/respond.h"
#include "http/routes.h"

static void respond_health(h2o_req_t *req, int redis_ok)
{
    int pg_ok = tk_refresher_pg_healthy();
    if (redis_ok && pg_ok) {
        tk_respond(req, 200, "application/json; charset=utf-8", h2o_iovec_init(H2O_STRLIT("{\"status\":\"ok\"}")));
        return;
    }
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 96);
    tk_jsonw_lit(&w, "{\"status\":\"unavailable\",\"redis\":");
    if (redis_ok)
        tk_jsonw_lit(&w, "\"ok\"");
    else
        tk_jsonw_lit(&w, "\"down\"");
    tk_jsonw_lit(&w, ",\"postgres\":");
    if (pg_ok)
        tk_jsonw_lit(&w, "\"ok\"}");
    else
        tk_jsonw_lit(&w, "\"down\"}");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    tk_respond_json(req, 503, &w);
}

static void on_ping(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    if (req != NULL)
        respond_health(req, reply != NULL && reply->type == REDIS_REPLY_STATUS);
    tk_async_finish(op);
}

int tk_route_healthz(h2o_req_t *req, tk_thread_t *thread)
{
    static const char *argv[] = {"PING"};
    static const size_t argvlen[] = {4};
    tk_async_t *op = tk_async_start(req, 0);
    if (tk_redis_command(thread->engine.redis, on_ping, op, 1, argv, argvlen) != 0) {
        tk_async_finish(op);
        respond_health(req, 0);
    }
    return 0;
}

int tk_route_metrics(h2o_req_t *req, tk_thread_t *thread)
{
    size_t len;
    char *text = tk_metrics_render(&len);
    h2o_iovec_t body = h2o_strdup(&req->pool, text, len);
    free(text);
    tk_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", body);
    return 0;
}
