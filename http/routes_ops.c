/*
 * Operations routes. GET /healthz answers 200 {"status":"ok"} when the engine finds
 * both stores healthy (this process's Redis connection answers a PING, the refresher's
 * last PostgreSQL check passed), and 503 naming what is down otherwise. GET /metrics
 * renders the Prometheus text format from every thread's counters, for holders of
 * TICKETD_METRICS_TOKEN (open to all only in development without one).
 */
#include "engine/metrics.h"
#include "engine/ops.h"
#include "http/auth.h"
#include "http/respond.h"
#include "http/routes.h"

static void respond_health(h2o_req_t *req, const tk_health_result_t *health)
{
    int redis_ok = health->redis == TK_HEALTH_OK, pg_ok = health->postgres == TK_HEALTH_OK;
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

static void on_health(const tk_health_result_t *result, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    if (req != NULL)
        respond_health(req, result);
    tk_async_finish(op);
}

int tk_route_healthz(h2o_req_t *req, tk_thread_t *thread)
{
    tk_async_t *op = tk_async_start(req, 0);
    if (tk_ops_health(&thread->engine, on_health, op) != 0) {
        tk_health_result_t now;
        tk_async_finish(op);
        tk_ops_health_now(&now);
        respond_health(req, &now);
    }
    return 0;
}

int tk_route_metrics(h2o_req_t *req, tk_thread_t *thread)
{
    if (tk_auth_metrics(req, thread->config) != 0)
        return 0;
    size_t len;
    char *text = tk_metrics_render(&len);
    h2o_iovec_t body = h2o_strdup(&req->pool, text, len);
    free(text);
    tk_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", body);
    return 0;
}
