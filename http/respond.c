/*
 * Response helpers and the async guard. Operations come from a per-thread free list
 * of fixed-size blocks, so waiting on Redis does not call malloc once warm; a guard
 * lives in the request's pool and its dispose callback detaches the operation. This
 * file knows h2o and the JSON writer only: the access log and the request counters are
 * an h2o logger (http/access_log.c), and the one module that must see answers before
 * they go out registers itself as the observer.
 */
#include "http/respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASYNC_BLOCK_SIZE 512
#define ASYNC_FREE_LIST_MAX 1024

struct st_tk_async_t {
    h2o_req_t *req;
    struct st_tk_async_guard_t *guard;
    size_t size;
    struct st_tk_async_t *next_free;
    /* caller data follows, aligned */
    _Alignas(16) char data[];
};

typedef struct st_tk_async_guard_t {
    tk_async_t *op;
} tk_async_guard_t;

static __thread tk_async_t *free_ops;
static __thread size_t free_ops_count;
static tk_respond_observer_fn observer;

void tk_respond_set_observer(tk_respond_observer_fn fn)
{
    observer = fn;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

void tk_respond(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (observer != NULL && observer(req, status, body))
        return; /* held: the observer sends it with tk_respond_send */
    h2o_send_inline(req, body.base, body.len);
}

void tk_respond_send(h2o_req_t *req, h2o_iovec_t body)
{
    h2o_send_inline(req, body.base, body.len);
}

void tk_respond_json(h2o_req_t *req, int status, tk_jsonw_t *body)
{
    tk_respond(req, status, "application/json; charset=utf-8", tk_jsonw_result(body));
}

static h2o_iovec_t error_body(h2o_mem_pool_t *pool, const char *error, const char *message)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, pool, 128 + strlen(error) + strlen(message));
    tk_jsonw_lit(&w, "{\"error\":");
    tk_jsonw_str(&w, error, strlen(error));
    tk_jsonw_lit(&w, ",\"message\":");
    tk_jsonw_str(&w, message, strlen(message));
    tk_jsonw_lit(&w, "}");
    return tk_jsonw_result(&w);
}

void tk_respond_error(h2o_req_t *req, int status, const char *error, const char *message)
{
    tk_respond(req, status, "application/json; charset=utf-8", error_body(&req->pool, error, message));
}

void tk_answer_json(tk_answer_t *a, int status, tk_jsonw_t *body)
{
    *a = (tk_answer_t){.status = status, .body = tk_jsonw_result(body)};
}

void tk_answer_error(tk_answer_t *a, h2o_mem_pool_t *pool, int status, const char *error, const char *message)
{
    *a = (tk_answer_t){.status = status, .body = error_body(pool, error, message), .retry_after = status == 503};
}

void tk_respond_answer(h2o_req_t *req, const tk_answer_t *a)
{
    if (a->cookie.len != 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
                       h2o_strdup(&req->pool, a->cookie.base, a->cookie.len).base, a->cookie.len);
    if (a->retry_after > 0) {
        char *seconds = h2o_mem_alloc_pool(&req->pool, 16);
        size_t len = (size_t)snprintf(seconds, 16, "%d", a->retry_after);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, seconds, len);
    }
    tk_respond(req, a->status, "application/json; charset=utf-8", h2o_strdup(&req->pool, a->body.base, a->body.len));
}

void tk_respond_unavailable(h2o_req_t *req, const char *message)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    tk_respond_error(req, 503, "Service unavailable", message);
}

static void on_guard_dispose(void *p)
{
    tk_async_guard_t *guard = p;
    if (guard->op != NULL)
        guard->op->req = NULL;
}

tk_async_t *tk_async_start(h2o_req_t *req, size_t size)
{
    tk_async_t *op;
    if (size + sizeof(*op) <= ASYNC_BLOCK_SIZE && free_ops != NULL) {
        op = free_ops;
        free_ops = op->next_free;
        --free_ops_count;
    } else {
        op = h2o_mem_alloc(size + sizeof(*op) <= ASYNC_BLOCK_SIZE ? ASYNC_BLOCK_SIZE : size + sizeof(*op));
    }
    op->req = req;
    op->size = size;
    op->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*op->guard), on_guard_dispose);
    op->guard->op = op;
    memset(op->data, 0, size);
    return op;
}

void *tk_async_data(tk_async_t *op)
{
    return op->data;
}

h2o_req_t *tk_async_req(tk_async_t *op)
{
    return op->req;
}

void tk_async_finish(tk_async_t *op)
{
    if (op->req != NULL)
        op->guard->op = NULL; /* the pool outlives us; its dispose must not touch op */
    if (op->size + sizeof(*op) <= ASYNC_BLOCK_SIZE && free_ops_count < ASYNC_FREE_LIST_MAX) {
        op->next_free = free_ops;
        free_ops = op;
        ++free_ops_count;
    } else {
        free(op);
    }
}
