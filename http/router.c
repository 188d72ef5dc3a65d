/*
 * The route table. It is small and scanned linearly; the path comparison is a length
 * check first, so a request costs a handful of memcmp calls at most.
 */
#include "http/router.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

typedef int (*tk_route_fn)(h2o_req_t *req, tk_thread_t *thread);

static const struct {
    const char *method;
    const char *path; /* without the trailing slash */
    tk_route_fn fn;
} routes[] = {
    {"GET", "/events/event", tk_route_events_list},
    {"POST", "/events/event", tk_route_event_detail},
    {"GET", "/events/reservation", tk_route_reservation_read},
    {"POST", "/events/reservation", tk_route_reservation_create},
    {"DELETE", "/events/reservation", tk_route_reservation_cancel},
    {"POST", "/admin/events", tk_route_admin_create_event},
    {"GET", "/healthz", tk_route_healthz},
};

int tk_router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    char allow[64] = "";
    size_t allow_len = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); ++i) {
        if (!h2o_memis(path.base, path.len, routes[i].path, strlen(routes[i].path)))
            continue;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method)))
            return routes[i].fn(req, tk_thread_of(req));
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
