/*
 * Dispatch from (method, path) to a route handler. Paths match with or without a
 * trailing slash; an unknown path is a JSON 404, a known path with another method a JSON
 * 405 with an Allow header, and a path that h2o's normalization would change (percent-
 * encoding, dot segments) a JSON 400. Ambiguous HTTP/1 framing is 400 with the
 * connection closed; requests past their in-flight budget are 503 (router.c).
 */
#ifndef TK_ROUTER_H
#define TK_ROUTER_H

#include <h2o.h>

typedef enum en_tk_route_verdict_t {
    TK_ROUTE_FOUND = 0,
    TK_ROUTE_WRONG_METHOD, /* the path is a route's, the method is not */
    TK_ROUTE_NOT_FOUND,
    TK_ROUTE_BAD_PATH, /* the raw path and h2o's normalized path differ */
} tk_route_verdict_t;

int tk_router_on_req(h2o_handler_t *self, h2o_req_t *req);
/* Matches a request: raw_path as sent (a query after '?' is ignored), normalized_path as
 * h2o_url_normalize_path made it. On TK_ROUTE_FOUND *row is the route's row; on
 * TK_ROUTE_WRONG_METHOD allow (allow_size bytes, may be 0) lists the methods of the path,
 * comma-separated. */
tk_route_verdict_t tk_router_match(h2o_iovec_t method, h2o_iovec_t raw_path, h2o_iovec_t normalized_path, size_t *row, char *allow,
                                   size_t allow_size);
/* the metrics slot of req's route (the last slot for unmatched paths) */
size_t tk_router_slot(h2o_req_t *req);
/* tells the metrics module the name of every slot */
void tk_router_name_metrics(void);
/* The i-th row of the route table, for tests and docs: its method and its path without the
 * trailing slash. 0, or -1 past the last row. */
int tk_router_route(size_t i, const char **method, const char **path);

#endif
