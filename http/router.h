/*
 * Dispatch from (method, path) to a route handler. Paths match with or without a
 * trailing slash; an unknown path is a JSON 404 and a known path with another method
 * a JSON 405 with an Allow header.
 */
#ifndef TK_ROUTER_H
#define TK_ROUTER_H

#include <h2o.h>

int tk_router_on_req(h2o_handler_t *self, h2o_req_t *req);

#endif
