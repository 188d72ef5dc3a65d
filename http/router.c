/*
 * The route table. It is small and scanned linearly; the path comparison is a length
 * check first, so a request costs a handful of memcmp calls at most.
 */
#include "http/router.h"
#include "http/idempotency.h"
#include "http/respond.h"
#include "http/routes.h"
#include "engine/metrics.h"

#include <string.h>

static const struct {
    const char *method;
    const char *path; /* without the trailing slash */
    tk_route_fn fn;
    int idempotent; /* honours Idempotency-Key */
} routes[] = {
    {"GET", "/events/event", tk_route_events_list},
    {"POST", "/events/event", tk_route_event_detail},
    {"GET", "/events/reservation", tk_route_reservation_read},
    {"POST", "/events/reservation", tk_route_reservation_create, 1},
    {"PUT", "/events/reservation", tk_route_payment_start, 1},
    {"DELETE", "/events/reservation", tk_route_reservation_cancel},
    {"GET", "/transactions/list", tk_route_transaction_status},
    {"GET", "/events/stats", tk_route_event_stats},
    {"POST", "/admin/events", tk_route_admin_create_event},
    {"GET", "/healthz", tk_route_healthz},
    {"GET", "/metrics", tk_route_metrics},
    {"GET", "/openapi.yaml", tk_route_openapi},
    {"GET", "/admin", tk_route_admin_page},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static h2o_iovec_t route_path_of(h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    return path;
}

size_t tk_router_slot(h2o_req_t *req)
{
    h2o_iovec_t path = route_path_of(req);
    for (size_t i = 0; i < NROUTES; ++i)
        if (h2o_memis(path.base, path.len, routes[i].path, strlen(routes[i].path)) &&
            h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method)))
            return i;
    return TK_METRICS_ROUTES - 1;
}

void tk_router_name_metrics(void)
{
    _Static_assert(NROUTES < TK_METRICS_ROUTES, "more routes than metrics slots");
    for (size_t i = 0; i < NROUTES; ++i)
        tk_metrics_set_route_name(i, routes[i].method, routes[i].path);
}

int tk_router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t path = route_path_of(req);
    char allow[64] = "";
    size_t allow_len = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); ++i) {
        if (!h2o_memis(path.base, path.len, routes[i].path, strlen(routes[i].path)))
            continue;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method)))
            return routes[i].idempotent ? tk_idempotency_run(req, tk_thread_of(req), routes[i].fn)
                                        : routes[i].fn(req, tk_thread_of(req));
        allow_len +=
            (size_t)snprintf(allow + allow_len, sizeof(allow) - allow_len, "%s%s", allow_len ? ", " : "", routes[i].method);
    }
    if (allow_len != 0) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, allow, allow_len).base,
                       allow_len);
        tk_respond_error(req, 405, "Method not allowed", "This path does not accept this method");
    } else {
        tk_respond_error(req, 404, "Not found", "There is no such route");
    }
    return 0;
}

int tk_router_route(size_t i, const char **method, const char **path)
{
    if (i >= sizeof(routes) / sizeof(routes[0]))
        return -1;
    *method = routes[i].method;
    *path = routes[i].path;
    return 0;
}
