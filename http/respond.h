/*
 * Writing responses: JSON bodies with the right status and headers, the API's error
 * shape {"error": …, "message": …}, and the guard that lets a request wait on Redis or
 * a worker safely: if the client goes away first (HTTP/2 frees the request at once),
 * the late completion finds the guard detached and writes nothing.
 */
#ifndef TK_RESPOND_H
#define TK_RESPOND_H

#include "engine/jsonw.h"

#include <h2o.h>

void tk_respond(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body);
/* Called by tk_respond with every answer just before it is sent (one observer: the
 * idempotency module, which stores answers to claimed keys). It returns 0 to let the
 * answer go out at once, or 1 to hold it until tk_respond_send (the answer must not
 * reach the client before it is stored, or a quick retry could miss it). Set once at
 * start-up. */
typedef int (*tk_respond_observer_fn)(h2o_req_t *req, int status, h2o_iovec_t body);
void tk_respond_set_observer(tk_respond_observer_fn fn);
/* Sends an answer the observer held (status and headers are already set). */
void tk_respond_send(h2o_req_t *req, h2o_iovec_t body);
void tk_respond_json(h2o_req_t *req, int status, tk_jsonw_t *body);
void tk_respond_error(h2o_req_t *req, int status, const char *error, const char *message);
/* 503 with Retry-After, for a store that is down or a queue that is full */
void tk_respond_unavailable(h2o_req_t *req, const char *message);

/* An answer built before it is known whether its client is still there: sent with
 * tk_respond_answer when it is, kept for an Idempotency-Key when it is not. */
typedef struct st_tk_answer_t {
    int status;
    h2o_iovec_t body;   /* JSON */
    h2o_iovec_t cookie; /* a Set-Cookie value, or empty */
    int retry_after;    /* seconds; 0: no Retry-After */
} tk_answer_t;
void tk_answer_json(tk_answer_t *a, int status, tk_jsonw_t *body);
/* the API's error shape; 503 answers get Retry-After: 1 */
void tk_answer_error(tk_answer_t *a, h2o_mem_pool_t *pool, int status, const char *error, const char *message);
void tk_respond_answer(h2o_req_t *req, const tk_answer_t *a);

/* An asynchronous operation on behalf of a request, with size bytes of caller data. */
typedef struct st_tk_async_t tk_async_t;
tk_async_t *tk_async_start(h2o_req_t *req, size_t size);
void *tk_async_data(tk_async_t *op);
/* the request, or NULL when its client went away */
h2o_req_t *tk_async_req(tk_async_t *op);
/* detaches from the request and releases the operation */
void tk_async_finish(tk_async_t *op);

#endif
