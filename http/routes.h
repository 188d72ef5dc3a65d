/*
 * The route handlers, one function per route and method. Each answers the request
 * (now or after an asynchronous step) and returns 0.
 */
#ifndef TK_ROUTES_H
#define TK_ROUTES_H

#include "engine/catalog.h"
#include "engine/jsonw.h"
#include <jansson.h>
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
/* the waiting room (http/routes_queue.c) */
int tk_route_queue_join(h2o_req_t *req, tk_thread_t *thread);
int tk_route_queue_poll(h2o_req_t *req, tk_thread_t *thread);
int tk_route_admin_room_put(h2o_req_t *req, tk_thread_t *thread);
int tk_route_admin_room_get(h2o_req_t *req, tk_thread_t *thread);
/* 0 when a reservation for ev may go ahead (adm->ticket 0 when its room is not on); else answers 403 and returns -1 */
struct st_tk_wr_admission_t;
int tk_route_queue_gate(h2o_req_t *req, tk_thread_t *thread, const tk_event_t *ev, json_t *body, struct st_tk_wr_admission_t *adm);

/* {"event": {...}, "ticket_types": [...]} with left[i] tickets left of ev->types[i] */
void tk_render_event_detail(tk_jsonw_t *w, const tk_event_t *ev, const int64_t *left);

#endif
