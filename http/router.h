/*
 * Dispatch from (method, path) to a route handler. Paths match with or without a
 * trailing slash; an unknown path is a JSON 404 and a known path with another method
 * a JSON 405 with an Allow header.
 */
#ifndef TK_ROUTER_H
#define TK_ROUTER_H

#include <h2o.h>

int tk_router_on_req(h2o_handler_t *self, h2o_req_t *req);
/* the metrics slot of req's route (the last slot for unmatched paths) */
size_t tk_router_slot(h2o_req_t *req);
/* tells the metrics module the name of every slot */
void tk_router_name_metrics(void);
/* The i-th row of the route table, for tests and docs: its method and its path without the
 * trailing slash. 0, or -1 past the last row. */
int tk_router_route(size_t i, const char **method, const char **path);

#endif
