/*
 * Claims live in a per-thread list (requests are answered on the thread that received
 * them), found by request pointer when the response is written; a pool-linked guard
 * removes the entry if the client goes away first. Stored answers are
 * "<status> <cookie length>\n<Set-Cookie value><body>".
 */
#include "http/idempotency.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "http/respond.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 255
#define REDIS_KEY_LEN (8 + 2 * SHA256_DIGEST_LENGTH) /* "tk:idem:" + hex */

typedef struct st_tk_idem_claim_t {
    h2o_req_t *req; /* NULL once answered or gone */
    tk_thread_t *thread;
    tk_route_fn handler;
    char key[REDIS_KEY_LEN + 1];
    struct st_tk_idem_claim_t *next;
} tk_idem_claim_t;

static __thread tk_idem_claim_t *active_claims;

static void forget_claim(tk_idem_claim_t *claim)
{
    for (tk_idem_claim_t **p = &active_claims; *p != NULL; p = &(*p)->next) {
        if (*p == claim) {
            *p = claim->next;
            return;
        }
    }
}

static void on_claim_dispose(void *p)
{
    forget_claim(p);
}

static void derive_key(h2o_req_t *req, h2o_iovec_t key, char *out)
{
    static const char hex[] = "0123456789abcdef";
    h2o_iovec_t path = req->path_normalized;
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    h2o_iovec_t material =
        h2o_concat(&req->pool, req->method, h2o_iovec_init(H2O_STRLIT("\n")), path, h2o_iovec_init(H2O_STRLIT("\n")), key);
    SHA256((const unsigned char *)material.base, material.len, digest);
    memcpy(out, "tk:idem:", 8);
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
        out[8 + 2 * i] = hex[digest[i] >> 4];
        out[9 + 2 * i] = hex[digest[i] & 15];
    }
    out[REDIS_KEY_LEN] = '\0';
}

/* Answers req with a stored answer; -1 when the stored bytes are not one. */
static int replay(h2o_req_t *req, const char *stored, size_t len)
{
    int status;
    size_t cookie_len;
    const char *nl = memchr(stored, '\n', len);
    if (nl == NULL || sscanf(stored, "%d %zu", &status, &cookie_len) != 2 || cookie_len > len - (size_t)(nl + 1 - stored))
        return -1;
    const char *cookie = nl + 1, *body = cookie + cookie_len;
    size_t body_len = len - (size_t)(body - stored);
    if (cookie_len != 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, h2o_strdup(&req->pool, cookie, cookie_len).base,
                       cookie_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("idempotent-replayed"), 0, NULL, H2O_STRLIT("true"));
    tk_respond(req, status, "application/json; charset=utf-8", h2o_strdup(&req->pool, body, body_len));
    return 0;
}

static void on_claim(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_idem_claim_t *claim = *(tk_idem_claim_t **)tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    tk_async_finish(op);
    if (req == NULL)
        return; /* the claim itself is freed with the request's pool */
    const char *verdict =
        reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && reply->element[0]->type == REDIS_REPLY_STRING
            ? reply->element[0]->str
            : "";
    if (strcmp(verdict, "CLAIMED") == 0) {
        claim->req = req;
        claim->next = active_claims;
        active_claims = claim;
        claim->handler(req, claim->thread);
    } else if (strcmp(verdict, "BUSY") == 0) {
        /* the first request is running, or died with its claim (which lapses in TK_IDEMPOTENCY_CLAIM_MS) */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("2"));
        tk_respond_error(req, 409, "Request in progress", "A request with this Idempotency-Key is still being processed");
    } else if (strcmp(verdict, "DONE") != 0 || reply->elements != 2 ||
               replay(req, reply->element[1]->str, reply->element[1]->len) != 0) {
        tk_respond_unavailable(req, "Idempotency keys cannot be checked right now; try again");
    }
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
    tk_idem_claim_t *claim = h2o_mem_alloc_shared(&req->pool, sizeof(*claim), on_claim_dispose);
    *claim = (tk_idem_claim_t){.thread = thread, .handler = handler};
    derive_key(req, key, claim->key);

    tk_async_t *op = tk_async_start(req, sizeof(claim));
    *(tk_idem_claim_t **)tk_async_data(op) = claim;
    char claim_ms[16];
    snprintf(claim_ms, sizeof(claim_ms), "%d", TK_IDEMPOTENCY_CLAIM_MS);
    const char *argv[] = {"FCALL", "tk_idem_claim", "1", claim->key, claim_ms};
    size_t argvlen[] = {5, 13, 1, REDIS_KEY_LEN, strlen(claim_ms)};
    if (tk_redis_command(thread->engine.redis, on_claim, op, 5, argv, argvlen) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Idempotency keys cannot be checked right now; try again");
    }
    return 0;
}

static void on_stored(redisReply *reply, void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        tk_log_warn("idempotency", "storing an answer failed; its claim lapses in %d s", TK_IDEMPOTENCY_CLAIM_MS / 1000);
}

void tk_idempotency_on_respond(h2o_req_t *req, int status, h2o_iovec_t body)
{
    tk_idem_claim_t *claim = active_claims;
    while (claim != NULL && claim->req != req)
        claim = claim->next;
    if (claim == NULL)
        return;
    forget_claim(claim);
    claim->req = NULL;
    tk_redis_t *redis = claim->thread->engine.redis;
    if (status >= 500) {
        /* not an answer worth keeping: free the key so the client may retry */
        const char *argv[] = {"DEL", claim->key};
        size_t argvlen[] = {3, REDIS_KEY_LEN};
        tk_redis_command(redis, on_stored, NULL, 2, argv, argvlen);
        return;
    }
    h2o_iovec_t cookie = {NULL, 0};
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_SET_COOKIE, -1);
    if (i != -1)
        cookie = req->res.headers.entries[i].value;
    char head[48];
    int head_len = snprintf(head, sizeof(head), "%d %zu\n", status, cookie.len);
    size_t len = (size_t)head_len + cookie.len + body.len;
    char *stored = h2o_mem_alloc_pool(&req->pool, len);
    memcpy(stored, head, (size_t)head_len);
    if (cookie.len != 0)
        memcpy(stored + head_len, cookie.base, cookie.len);
    memcpy(stored + head_len + cookie.len, body.base, body.len);
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", TK_IDEMPOTENCY_TTL_MS);
    const char *argv[] = {"SET", claim->key, stored, "PX", ttl};
    size_t argvlen[] = {3, REDIS_KEY_LEN, len, 2, strlen(ttl)};
    tk_redis_command(redis, on_stored, NULL, 5, argv, argvlen);
}
