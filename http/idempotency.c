/*
 * A claim in progress is a small block (a hold, from the engine's recycled operation
 * blocks: it must outlive its request), referenced by the request (through
 * a guard in its pool), by the engine's claim call while it is in flight, and by any
 * route operation that took it; the last reference to go releases a claim nobody settled,
 * so a key is never left claimed by a request that answered nothing. Claimed requests
 * are listed per thread (requests are answered on the thread that received them), found
 * by request pointer when the response is written.
 */
#include "http/idempotency.h"
#include "engine/idem.h"

#include <string.h>

#define KEY_MAX 255

struct st_tk_idem_hold_t {
    tk_idem_claim_t claim;
    tk_thread_t *thread;
    tk_route_fn handler;
    h2o_req_t *req; /* NULL once the request is gone */
    int claimed, settled;
    unsigned refs;
    h2o_iovec_t held;               /* the answer waiting for the engine to take it, in the request's pool */
    struct st_tk_idem_hold_t *next; /* in active_holds while claimed, unsettled and its request alive */
};
_Static_assert(sizeof(tk_idem_hold_t) <= TK_ENGINE_OP_SIZE, "a hold fits an engine op block");

static __thread tk_idem_hold_t *active_holds;

static void unlink_hold(tk_idem_hold_t *hold)
{
    for (tk_idem_hold_t **p = &active_holds; *p != NULL; p = &(*p)->next) {
        if (*p == hold) {
            *p = hold->next;
            return;
        }
    }
}

static void drop(tk_idem_hold_t *hold)
{
    if (--hold->refs != 0)
        return;
    if (hold->claimed && !hold->settled)
        tk_idem_release(&hold->thread->engine, &hold->claim, NULL, NULL);
    tk_engine_op_free(&hold->thread->engine, hold);
}

static void on_settled(void *data)
{
    tk_idem_hold_t *hold = data;
    if (hold->req != NULL)
        tk_respond_send(hold->req, hold->held);
    drop(hold);
}

/* Settles the claim with an answer. With send_after, the answer goes out only once the
 * engine has it (so that a retry the client sends at once, maybe to another thread and
 * Redis connection, finds it): returns 1 when it is held for that, 0 to send it now. */
static int settle(tk_idem_hold_t *hold, int status, h2o_iovec_t cookie, h2o_iovec_t body, int send_after)
{
    if (!hold->claimed || hold->settled)
        return 0;
    hold->settled = 1;
    unlink_hold(hold);
    tk_idem_answer_t answer = {.status = status, .cookie = cookie, .body = body};
    if (!send_after || hold->req == NULL) {
        tk_idem_settle(&hold->thread->engine, &hold->claim, &answer, NULL, NULL);
        return 0;
    }
    hold->held = h2o_strdup(&hold->req->pool, body.base, body.len);
    ++hold->refs;
    if (tk_idem_settle(&hold->thread->engine, &hold->claim, &answer, on_settled, hold) != 0) {
        --hold->refs;
        return 0;
    }
    return 1;
}

static void on_request_dispose(void *p)
{
    tk_idem_hold_t *hold = *(tk_idem_hold_t **)p;
    hold->req = NULL;
    unlink_hold(hold);
    drop(hold);
}

static void replay(h2o_req_t *req, const tk_idem_answer_t *answer)
{
    if (answer->cookie.len != 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
                       h2o_strdup(&req->pool, answer->cookie.base, answer->cookie.len).base, answer->cookie.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("idempotent-replayed"), 0, NULL, H2O_STRLIT("true"));
    tk_respond(req, answer->status, "application/json; charset=utf-8", h2o_strdup(&req->pool, answer->body.base, answer->body.len));
}

static void on_claim(const tk_idem_result_t *result, void *data)
{
    tk_idem_hold_t *hold = data;
    h2o_req_t *req = hold->req;
    hold->claimed = result->outcome == TK_IDEM_CLAIMED;
    if (req == NULL)
        goto Exit; /* gone before it could run: drop releases the claim */
    switch (result->outcome) {
    case TK_IDEM_CLAIMED:
        hold->next = active_holds;
        active_holds = hold;
        hold->handler(req, hold->thread);
        break;
    case TK_IDEM_REPLAY:
        replay(req, &result->answer);
        break;
    case TK_IDEM_BUSY:
        /* the first request is running, or died with its claim (which lapses in TK_IDEM_CLAIM_MS) */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("2"));
        tk_respond_error(req, 409, "Request in progress", "A request with this Idempotency-Key is still being processed");
        break;
    case TK_IDEM_MISMATCH:
        tk_respond_error(req, 422, "Idempotency-Key reused", "This Idempotency-Key was already used for a different request");
        break;
    case TK_IDEM_UNAVAILABLE:
        tk_respond_unavailable(req, "Idempotency keys cannot be checked right now; try again");
        break;
    }
Exit:
    drop(hold);
}

int tk_idempotency_run(h2o_req_t *req, tk_thread_t *thread, tk_route_fn handler)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("idempotency-key"), -1);
    if (i == -1)
        return handler(req, thread);
    h2o_iovec_t key = req->headers.entries[i].value;
    int valid = key.len >= 1 && key.len <= KEY_MAX;
    for (size_t j = 0; valid && j < key.len; ++j)
        valid = key.base[j] >= 0x20 && key.base[j] <= 0x7e;
    if (!valid) {
        tk_respond_error(req, 400, "Invalid Idempotency-Key", "Idempotency-Key must be 1 to 255 printable ASCII characters");
        return 0;
    }
    h2o_iovec_t path = req->path_normalized;
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    tk_idem_request_t rq = {.method = req->method, .path = path, .key = key, .body = req->entity};
    if (rq.body.base == NULL)
        rq.body = h2o_iovec_init("", 0);

    tk_idem_hold_t *hold = tk_engine_op_alloc(&thread->engine);
    *hold = (tk_idem_hold_t){.thread = thread, .handler = handler, .req = req, .refs = 2};
    tk_idem_hold_t **guard = h2o_mem_alloc_shared(&req->pool, sizeof(*guard), on_request_dispose);
    *guard = hold;
    if (tk_idem_claim(&thread->engine, &rq, &hold->claim, on_claim, hold) != 0) {
        --hold->refs; /* the claim call's reference: the guard's goes with the request */
        tk_respond_unavailable(req, "Idempotency keys cannot be checked right now; try again");
    }
    return 0;
}

int tk_idempotency_on_respond(h2o_req_t *req, int status, h2o_iovec_t body)
{
    tk_idem_hold_t *hold = active_holds;
    while (hold != NULL && hold->req != req)
        hold = hold->next;
    if (hold == NULL)
        return 0;
    h2o_iovec_t cookie = {NULL, 0};
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_SET_COOKIE, -1);
    if (i != -1)
        cookie = req->res.headers.entries[i].value;
    return settle(hold, status, cookie, body, 1);
}

tk_idem_hold_t *tk_idempotency_hold(h2o_req_t *req)
{
    tk_idem_hold_t *hold = active_holds;
    while (hold != NULL && hold->req != req)
        hold = hold->next;
    if (hold != NULL)
        ++hold->refs;
    return hold;
}

void tk_idempotency_finish(tk_idem_hold_t *hold, const tk_answer_t *answer)
{
    settle(hold, answer->status, answer->cookie, answer->body, 0);
    drop(hold);
}

void tk_idempotency_deliver(h2o_req_t *req, tk_idem_hold_t *hold, tk_answer_build_cb build, const void *ctx)
{
    h2o_mem_pool_t detached; /* the client went away: the answer is built for the key alone */
    if (req == NULL)
        h2o_mem_init_pool(&detached);
    tk_answer_t answer;
    build(&answer, req != NULL ? &req->pool : &detached, ctx);
    if (req != NULL)
        tk_respond_answer(req, &answer);
    if (hold != NULL)
        tk_idempotency_finish(hold, &answer);
    if (req == NULL)
        h2o_mem_clear_pool(&detached);
}
