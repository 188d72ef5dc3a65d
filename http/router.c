/*
 * The route table and the checks every request passes before a route sees it:
 * unambiguous HTTP/1 framing, a path with a single reading, and admission on the
 * route's in-flight budget. The table is small and scanned linearly; the path
 * comparison is a length check first, so a request costs a handful of memcmp calls.
 */
#include "http/router.h"
#include "engine/log.h"
#include "engine/metrics.h"
#include "http/framing.h"
#include "http/http_metrics.h"
#include "http/idempotency.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

/*
 * Admission control: two budgets per loop thread, so that neither kind of request can
 * take what the other needs. TICKETD_MAX_INFLIGHT (N) bounds the loop's Redis pipeline.
 * - Reads that reach the store (READ) are admitted while the pipeline holds fewer than
 *   N - N/4 commands: a flood of them, however fast (HTTP/2 streams reset before their
 *   answer included: their commands count until Redis replies), leaves a quarter of
 *   the pipeline to writes.
 * - Writes (WRITE) are admitted while fewer than N/2 of them are in progress on this
 *   loop and the pipeline is not full, so a flood of writes leaves reads room as well.
 *   A write counts from admission until h2o disposes of its request.
 * Refusals are 503 + Retry-After at once instead of a place in a queue that only grows;
 * while the server drains for shutdown, writes are refused too. Requests served from
 * memory (FREE: the catalog list, static pages, /metrics, /healthz, queue polls) are
 * always admitted. (A shard whose unpersisted outbox is over TICKETD_OUTBOX_PAUSE is
 * paused by tk_reserve itself, for that shard only.)
 */
enum { FREE = 0, READ = 1, WRITE = 2, IDEMPOTENT_WRITE = 2 | 4 };

static size_t read_share(int max_inflight)
{
    size_t n = (size_t)max_inflight;
    return n - n / 4 > 0 ? n - n / 4 : 1;
}

static size_t write_share(int max_inflight)
{
    size_t n = (size_t)max_inflight;
    return n / 2 > 0 ? n / 2 : 1;
}

static void on_write_disposed(void *p)
{
    size_t *writes_in_flight = *(size_t **)p;
    --*writes_in_flight;
}

static int admit(h2o_req_t *req, tk_thread_t *thread, int kind)
{
    const char *why = NULL;
    size_t pipeline = tk_engine_in_flight(&thread->engine);
    if (kind == READ) {
        if (pipeline >= read_share(thread->config->max_inflight))
            why = "Too many requests in progress; try again";
    } else if (kind & WRITE) {
        if (__atomic_load_n(&tk_server_draining, __ATOMIC_RELAXED))
            why = "The server is shutting down; try again";
        else if (thread->writes_in_flight >= write_share(thread->config->max_inflight) ||
                 pipeline >= (size_t)thread->config->max_inflight)
            why = "Too many requests in progress; try again";
    }
    if (why != NULL) {
        tk_metrics_inc(&thread->metrics.overload_refusals);
        tk_respond_unavailable(req, why);
        return 0;
    }
    if (kind & WRITE) {
        size_t **counter = h2o_mem_alloc_shared(&req->pool, sizeof(*counter), on_write_disposed);
        *counter = &thread->writes_in_flight;
        ++thread->writes_in_flight;
    }
    return 1;
}

static const struct {
    const char *method;
    const char *path; /* without the trailing slash; '*' stands for one path segment */
    tk_route_fn fn;
    int kind; /* the budget it is admitted on; IDEMPOTENT_WRITE also honours Idempotency-Key */
} routes[] = {
    {"GET", "/events/event", tk_route_events_list, FREE},
    {"POST", "/events/event", tk_route_event_detail, READ},
    {"GET", "/events/reservation", tk_route_reservation_read, READ},
    {"POST", "/events/reservation", tk_route_reservation_create, IDEMPOTENT_WRITE},
    {"PUT", "/events/reservation", tk_route_payment_start, IDEMPOTENT_WRITE},
    {"DELETE", "/events/reservation", tk_route_reservation_cancel, WRITE},
    {"GET", "/transactions/list", tk_route_transaction_status, READ},
    {"GET", "/events/stats", tk_route_event_stats, READ},
    {"POST", "/admin/events", tk_route_admin_create_event, WRITE},
    {"GET", "/healthz", tk_route_healthz, FREE},
    {"GET", "/metrics", tk_route_metrics, FREE},
    {"GET", "/openapi.yaml", tk_route_openapi, FREE},
    {"HEAD", "/openapi.yaml", tk_route_openapi, FREE},
    {"GET", "/", tk_route_storefront, FREE},
    {"GET", "/docs", tk_route_docs_page, FREE},
    {"GET", "/admin", tk_route_admin_page, FREE},
    {"POST", "/events/queue", tk_route_queue_join, WRITE},
    {"GET", "/events/queue", tk_route_queue_poll, FREE},
    {"PUT", "/admin/events/*/waiting-room", tk_route_admin_room_put, WRITE},
    {"GET", "/admin/events/*/waiting-room", tk_route_admin_room_get, READ},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

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

/*
 * Routing looks at the path exactly as the client sent it (up to '?'), and only after
 * checking that h2o's normalized path (percent-decoded, dot segments resolved) is the
 * same string. Routing on the normalized path alone let `/%6detrics` and `/x/../metrics`
 * reach /metrics, so any check made on the raw path (by us, or by a proxy in front that
 * guards /metrics or /admin by prefix) could be walked around; routing on the raw path
 * alone would leave the two readings to disagree somewhere else. Refusing every path
 * whose two readings differ means there is only one reading: no route of ours has a use
 * for percent-encoding or dot segments in its path (ids travel in the query and the body,
 * and the one path parameter is a UUID).
 */
tk_route_verdict_t tk_router_match(h2o_iovec_t method, h2o_iovec_t raw_path, h2o_iovec_t normalized_path, size_t *row, char *allow,
                                   size_t allow_size)
{
    const char *query = memchr(raw_path.base, '?', raw_path.len);
    if (query != NULL)
        raw_path.len = (size_t)(query - raw_path.base);
    if (allow_size != 0)
        allow[0] = '\0';
    if (!h2o_memis(raw_path.base, raw_path.len, normalized_path.base, normalized_path.len))
        return TK_ROUTE_BAD_PATH;
    h2o_iovec_t path = raw_path;
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    size_t allow_len = 0;
    int path_known = 0;
    for (size_t i = 0; i < NROUTES; ++i) {
        if (!path_is(path, routes[i].path))
            continue;
        if (h2o_memis(method.base, method.len, routes[i].method, strlen(routes[i].method))) {
            *row = i;
            return TK_ROUTE_FOUND;
        }
        path_known = 1;
        if (allow_len < allow_size) {
            int n = snprintf(allow + allow_len, allow_size - allow_len, "%s%s", allow_len ? ", " : "", routes[i].method);
            allow_len = n < 0 ? allow_len : allow_len + (size_t)n < allow_size ? allow_len + (size_t)n : allow_size - 1;
        }
    }
    return path_known ? TK_ROUTE_WRONG_METHOD : TK_ROUTE_NOT_FOUND;
}

size_t tk_router_slot(h2o_req_t *req)
{
    size_t row;
    if (req->path_normalized.base != NULL && req->input.path.base != NULL &&
        tk_router_match(req->method, req->input.path, req->path_normalized, &row, NULL, 0) == TK_ROUTE_FOUND)
        return row;
    return TK_HTTP_METRICS_ROUTES - 1;
}

void tk_router_name_metrics(void)
{
    _Static_assert(NROUTES < TK_HTTP_METRICS_ROUTES, "more routes than metrics slots");
    for (size_t i = 0; i < NROUTES; ++i)
        tk_http_metrics_set_route_name(i, routes[i].method, routes[i].path);
}

/* An HTTP/1 request whose head h2o read one way and a proxy might read another gets 400,
 * and its connection is closed after the answer, so that nothing after the ambiguous
 * body is ever read as a request. h2o 2.2.5 keeps the raw head at the start of the
 * socket's input buffer until the response is sent (it consumes the request only then),
 * with header names lower-cased in place. Returns 1 when it answered. */
static int refuse_ambiguous_framing(h2o_req_t *req)
{
    static int unreadable_logged;
    h2o_socket_t *sock = tk_server_http1_socket(req);
    if (sock == NULL || sock->input == NULL)
        return 0;
    tk_framing_t verdict = tk_framing_check(sock->input->bytes, sock->input->size);
    if (verdict == TK_FRAMING_OK)
        return 0;
    if (verdict == TK_FRAMING_HEAD_INCOMPLETE) {
        /* not h2o 2.2's buffer layout: say so once rather than refuse every request */
        if (!__atomic_exchange_n(&unreadable_logged, 1, __ATOMIC_RELAXED))
            tk_log_error("http", "cannot re-read HTTP/1 request heads: ambiguous framing is not refused");
        return 0;
    }
    req->http1_is_persistent = 0;
    tk_respond_error(req, 400, "Ambiguous request framing", tk_framing_reason(verdict));
    return 1;
}

int tk_router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (refuse_ambiguous_framing(req))
        return 0;
    char allow[64];
    size_t row;
    switch (tk_router_match(req->method, req->input.path, req->path_normalized, &row, allow, sizeof(allow))) {
    case TK_ROUTE_FOUND: {
        tk_thread_t *thread = tk_thread_of(req);
        if (!admit(req, thread, routes[row].kind))
            return 0;
        return routes[row].kind == IDEMPOTENT_WRITE ? tk_idempotency_run(req, thread, routes[row].fn) : routes[row].fn(req, thread);
    }
    case TK_ROUTE_WRONG_METHOD:
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, h2o_strdup(&req->pool, allow, SIZE_MAX).base,
                       strlen(allow));
        tk_respond_error(req, 405, "Method not allowed", "This path does not accept this method");
        return 0;
    case TK_ROUTE_BAD_PATH:
        tk_respond_error(req, 400, "Malformed path",
                         "The path must be sent as it is meant: no percent-encoding and no . or .. segments");
        return 0;
    case TK_ROUTE_NOT_FOUND:
        break;
    }
    tk_respond_error(req, 404, "Not found", "There is no such route");
    return 0;
}

int tk_router_route(size_t i, const char **method, const char **path)
{
    if (i >= NROUTES)
        return -1;
    *method = routes[i].method;
    *path = routes[i].path;
    return 0;
}
