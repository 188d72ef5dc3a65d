/*
 * Idempotency-Key for POST and PUT /events/reservation/ (API.md "Idempotency"), the
 * HTTP side. A request with a key claims it through the engine (engine/idem.h, which
 * owns the key's transitions, fingerprints and what is kept how long) before its route
 * runs; a retry with the same key and body gets the first answer again, with another
 * body 422, while the first still runs 409. The answer is handed to the engine as the
 * response goes out (tk_idempotency_on_respond, the responder's observer, which sends it
 * only once the engine has it, so that an immediate retry finds it), or, when the
 * client went away first (an HTTP/2 reset frees the request at once), by the route
 * itself once its engine call completes: a route whose work outlives its request takes
 * a reference with tk_idempotency_hold and gives it back with tk_idempotency_finish.
 * Without the header nothing changes.
 */
#ifndef TK_IDEMPOTENCY_H
#define TK_IDEMPOTENCY_H

#include "http/respond.h"
#include "http/server.h"

typedef int (*tk_route_fn)(h2o_req_t *req, tk_thread_t *thread);
typedef struct st_tk_idem_hold_t tk_idem_hold_t;

/* Runs handler for req, honouring an Idempotency-Key header if there is one. */
int tk_idempotency_run(h2o_req_t *req, tk_thread_t *thread, tk_route_fn handler);
/* The observer of every response: settles the claim req runs under, if any, and then
 * holds the answer until the engine has it (returns 1; 0: send it now). */
int tk_idempotency_on_respond(h2o_req_t *req, int status, h2o_iovec_t body);
/* A reference to the claim req runs under (NULL when none), for a route whose engine
 * call may complete after the request is gone. */
tk_idem_hold_t *tk_idempotency_hold(h2o_req_t *req);
/* Gives the reference back. When the claim is still unsettled (its client went away
 * before an answer was sent), answer settles it. */
void tk_idempotency_finish(tk_idem_hold_t *hold, const tk_answer_t *answer);

/* What a route whose engine call outlives its request does with the result: build the
 * answer (build(answer, pool, ctx)) in the request's pool, or in a pool of its own when
 * the client has gone (req NULL), send it when there is someone to send it to, and give
 * the hold back with it (hold NULL: the request carried no key). */
typedef void (*tk_answer_build_cb)(tk_answer_t *answer, h2o_mem_pool_t *pool, const void *ctx);
void tk_idempotency_deliver(h2o_req_t *req, tk_idem_hold_t *hold, tk_answer_build_cb build, const void *ctx);

#endif
