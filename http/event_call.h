/*
 * One Redis function call about one event of the catalog, on behalf of a request: find
 * the event in this thread's catalog (404 when unknown), keep that catalog snapshot
 * alive while Redis answers, send the call (503 with Retry-After when Redis is away),
 * and hand the reply, the request (or NULL if its client left) and the event to the
 * route's callback. Used by POST /events/event/ (availability) and GET /events/stats/.
 */
#ifndef TK_EVENT_CALL_H
#define TK_EVENT_CALL_H

#include "engine/redis_conn.h"
#include "http/server.h"

/* sends the function call for ev; 0 when sent */
typedef int (*tk_event_call_send)(tk_redis_t *r, const tk_event_t *ev, tk_redis_cb cb, void *data);
/* req is NULL when the client went away; reply is NULL when the call failed */
typedef void (*tk_event_call_done)(h2o_req_t *req, redisReply *reply, const tk_event_t *ev);

/* unavailable: the 503 message when Redis cannot be asked */
void tk_event_call(h2o_req_t *req, tk_thread_t *thread, const char *event_id, tk_event_call_send send, tk_event_call_done done,
                   const char *unavailable);

#endif
