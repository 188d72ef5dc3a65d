/*
 * Idempotency-Key for POST and PUT /events/reservation/. For 24 hours a request with the
 * same key, method and path gets the first answer again — status, body and cookie —
 * without running a second time, whatever its body says. The first request claims the
 * key (tk_idem_claim, one round trip); its answer is stored when it responds. A request
 * that arrives while the first is still running gets 409; 5xx answers are not stored,
 * so a client may retry after an outage. Without the header nothing changes.
 */
#ifndef TK_IDEMPOTENCY_H
#define TK_IDEMPOTENCY_H

#include "http/server.h"

#define TK_IDEMPOTENCY_TTL_MS (24 * 3600 * 1000)
#define TK_IDEMPOTENCY_CLAIM_MS 60000

typedef int (*tk_route_fn)(h2o_req_t *req, tk_thread_t *thread);

/* Runs handler for req, honouring an Idempotency-Key header if there is one. */
int tk_idempotency_run(h2o_req_t *req, tk_thread_t *thread, tk_route_fn handler);
/* Called by the response helpers: stores the answer if req holds a claimed key. */
void tk_idempotency_on_respond(h2o_req_t *req, int status, h2o_iovec_t body);

#endif
