/*
 * The route table. It is small and scanned linearly; the path comparison is a length
 * check first, so a request costs a handful of memcmp calls at most.
 */
#include "http/router.h"
#include "http/idempotency.h"
#include "http/respond.h"
#include "http/routes.h"
#include "engine/metrics.h"
#include "http/http_metrics.h"

#include <string.h>

/* Admission control for routes that change state. Their work queues are bounded: when
 * this thread's Redis pipeline (TICKETD_MAX_INFLIGHT) is past its limit, or the server is
 * draining for shutdown, they get 503 + Retry-After at once instead of joining a queue
 * that only grows. Reads are always admitted. (A shard whose unpersisted outbox is over
 * TICKETD_OUTBOX_PAUSE is paused by tk_reserve itself, for that shard only.) */

static int admit(h2o_req_t *req, tk_thread_t *thread)
{
    const char *why = NULL;
    if (__atomic_load_n(&tk_server_draining, __ATOMIC_RELAXED))
        why = "The server is shutting down; try again";
    else if (tk_engine_in_flight(&thread->engine) >= (size_t)thread->config->max_inflight)
        why = "Too many requests in progress; try again";
    if (why == NULL)
        return 1;
    tk_metrics_inc(&thread->metrics.overload_refusals);
    tk_respond_unavailable(req, why);
    return 0;
}

enum { READ = 0, WRITE = 1, IDEMPOTENT_WRITE = 3 };

static const struct {
    const char *method;
    const char *path; /* without the trailing slash */
    tk_route_fn fn;
    int kind; /* WRITE: admission-controlled; IDEMPOTENT_WRITE: also honours Idempotency-Key */
} routes[] = {
    {"GET", "/events/event", tk_route_events_list},
    {"POST", "/events/event", tk_route_event_detail},
    {"GET", "/events/reservation", tk_route_reservation_read},
    {"POST", "/events/reservation", tk_route_reservation_create, IDEMPOTENT_WRITE},
    {"PUT", "/events/reservation", tk_route_payment_start, IDEMPOTENT_WRITE},
    {"DELETE", "/events/reservation", tk_route_reservation_cancel, WRITE},
    {"GET", "/transactions/list", tk_route_transaction_status},
    {"GET", "/events/stats", tk_route_event_stats},
    {"POST", "/admin/events", tk_route_admin_create_event, WRITE},
    {"GET", "/healthz", tk_route_healthz},
    {"GET", "/metrics", tk_route_metrics},
    {"GET", "/openapi.yaml", tk_route_openapi},
    {"HEAD", "/openapi.yaml", tk_route_openapi},
    {"GET", "/", tk_route_storefront},
    {"GET", "/docs", tk_route_docs_page},
    {"GET", "/admin", tk_route_admin_page},
    {"POST", "/events/queue", tk_route_queue_join, WRITE},
    {"GET", "/events/queue", tk_route_queue_poll},
    {"PUT", "/admin/events/*/waiting-room", tk_route_admin_room_put, WRITE},
    {"GET", "/admin/events/*/waiting-room", tk_route_admin_room_get},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static h2o_iovec_t route_path_of(h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    return path;
}

/* path == pattern, where a '*' in pattern stands for one non-empty path segment */
static int path_is(h2o_iovec_t path, const char *pattern)
{
    const char *star = strchr(pattern, '*');
    if (star == NULL)
        return h2o_memis(path.base, path.len, pattern, strlen(pattern));
    size_t head = (size_t)(star - pattern), tail = strlen(star + 1);
    if (path.len <= head + tail || memcmp(path.base, pattern, head) != 0 ||
        memcmp(path.base + path.len - tail, star + 1, tail) != 0)
        return 0;
    return memchr(path.base + head, '/', path.len - head - tail) == NULL;
}

size_t tk_router_slot(h2o_req_t *req)
{
    h2o_iovec_t path = route_path_of(req);
    for (size_t i = 0; i < NROUTES; ++i)
        if (path_is(path, routes[i].path) &&
            h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method)))
            return i;
    return TK_HTTP_METRICS_ROUTES - 1;
}

void tk_router_name_metrics(void)
{
    _Static_assert(NROUTES < TK_HTTP_METRICS_ROUTES, "more routes than metrics slots");
    for (size_t i = 0; i < NROUTES; ++i)
        tk_http_metrics_set_route_name(i, routes[i].method, routes[i].path);
}

int tk_router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t path = route_path_of(req);
    char allow[64] = "";
    size_t allow_len = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); ++i) {
        if (!path_is(path, routes[i].path))
            continue;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method))) {
            tk_thread_t *thread = tk_thread_of(req);
            if ((routes[i].kind & WRITE) && !admit(req, thread))
                return 0;
            return routes[i].kind == IDEMPOTENT_WRITE ? tk_idempotency_run(req, thread, routes[i].fn) : routes[i].fn(req, thread);
        }
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
