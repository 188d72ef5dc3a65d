/*
 * The route handlers, one function per route and method. Each answers the request
 * (now or after an asynchronous step) and returns 0.
 */
#ifndef TK_ROUTES_H
#define TK_ROUTES_H

#include "engine/catalog.h"
#include "engine/jsonw.h"
#include "http/server.h"

int tk_route_events_list(h2o_req_t *req, tk_thread_t *thread);
int tk_route_event_detail(h2o_req_t *req, tk_thread_t *thread);
int tk_route_admin_create_event(h2o_req_t *req, tk_thread_t *thread);
int tk_route_healthz(h2o_req_t *req, tk_thread_t *thread);
int tk_route_metrics(h2o_req_t *req, tk_thread_t *thread);
int tk_route_reservation_create(h2o_req_t *req, tk_thread_t *thread);
int tk_route_reservation_read(h2o_req_t *req, tk_thread_t *thread);
int tk_route_reservation_cancel(h2o_req_t *req, tk_thread_t *thread);
int tk_route_payment_start(h2o_req_t *req, tk_thread_t *thread);
int tk_route_transaction_status(h2o_req_t *req, tk_thread_t *thread);
int tk_route_event_stats(h2o_req_t *req, tk_thread_t *thread);
int tk_route_openapi(h2o_req_t *req, tk_thread_t *thread);
int tk_route_storefront(h2o_req_t *req, tk_thread_t *thread);
int tk_route_docs_page(h2o_req_t *req, tk_thread_t *thread);
int tk_route_admin_page(h2o_req_t *req, tk_thread_t *thread);

/* {"event": {...}, "ticket_types": [...]} with left[i] tickets left of ev->types[i] */
void tk_render_event_detail(tk_jsonw_t *w, const tk_event_t *ev, const int64_t *left);

#endif
