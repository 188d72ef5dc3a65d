/*
 * Idempotency keys: the names, fingerprints and tokens of claims, the policy of what is
 * kept and for how long, the stored form of an answer, and the three FCALLs. Settling
 * and releasing answer nobody: their failures are logged, and the claim then lapses on
 * its own after TK_IDEM_CLAIM_MS.
 */
#include "engine/idem.h"
#include "engine/inventory.h"
#include "engine/log.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

int64_t tk_idem_keep_ms(int status, size_t stored_len)
{
    if (stored_len > TK_IDEM_ANSWER_MAX)
        return 0;
    if (status >= 200 && status < 300)
        return TK_IDEM_DONE_MS;
    switch (status) {
    case 400: /* malformed: a corrected retry must run */
    case 413:
    case 415:
    case 429: /* refused for load or fair use: the retry must be judged anew */
        return 0;
    }
    return status >= 500 || status < 200 ? 0 : TK_IDEM_REFUSAL_MS;
}

h2o_iovec_t tk_idem_encode(h2o_mem_pool_t *pool, const tk_idem_answer_t *answer)
{
    char head[48];
    int head_len = snprintf(head, sizeof(head), "%d %zu\n", answer->status, answer->cookie.len);
    size_t len = (size_t)head_len + answer->cookie.len + answer->body.len;
    char *stored = h2o_mem_alloc_pool(pool, len + 1);
    memcpy(stored, head, (size_t)head_len);
    if (answer->cookie.len != 0)
        memcpy(stored + head_len, answer->cookie.base, answer->cookie.len);
    if (answer->body.len != 0)
        memcpy(stored + head_len + answer->cookie.len, answer->body.base, answer->body.len);
    stored[len] = '\0';
    return h2o_iovec_init(stored, len);
}

int tk_idem_decode(h2o_iovec_t stored, tk_idem_answer_t *out)
{
    const char *p = stored.base, *end = stored.base + stored.len;
    int status = 0;
    size_t cookie_len = 0, digits = 0;
    for (; p != end && *p >= '0' && *p <= '9' && digits < 3; ++p, ++digits)
        status = status * 10 + (*p - '0');
    if (digits != 3 || status < 100 || p == end || *p++ != ' ')
        return -1;
    for (digits = 0; p != end && *p >= '0' && *p <= '9' && digits < 6; ++p, ++digits)
        cookie_len = cookie_len * 10 + (size_t)(*p - '0');
    if (digits == 0 || p == end || *p++ != '\n' || cookie_len > (size_t)(end - p))
        return -1;
    out->status = status;
    out->cookie = h2o_iovec_init(p, cookie_len);
    out->body = h2o_iovec_init(p + cookie_len, (size_t)(end - p) - cookie_len);
    return 0;
}

static int is_string(const redisReply *r, const char *s)
{
    return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && h2o_memis(r->str, r->len, s, strlen(s));
}

void tk_idem_parse_claim(const redisReply *reply, tk_idem_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->outcome = TK_IDEM_UNAVAILABLE;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return;
    redisReply **e = reply->element;
    if (reply->elements == 1 && is_string(e[0], "CLAIMED"))
        out->outcome = TK_IDEM_CLAIMED;
    else if (reply->elements == 1 && is_string(e[0], "BUSY"))
        out->outcome = TK_IDEM_BUSY;
    else if (reply->elements == 1 && is_string(e[0], "MISMATCH"))
        out->outcome = TK_IDEM_MISMATCH;
    else if (reply->elements == 2 && is_string(e[0], "DONE") && e[1]->type == REDIS_REPLY_STRING &&
             tk_idem_decode(h2o_iovec_init(e[1]->str, e[1]->len), &out->answer) == 0)
        out->outcome = TK_IDEM_REPLAY;
}

/* ---- the calls ---- */

typedef struct st_tk_idem_op_t {
    tk_engine_t *e;
    tk_idem_cb cb;
    void *data;
} tk_idem_op_t;
_Static_assert(sizeof(tk_idem_op_t) <= TK_ENGINE_OP_SIZE, "tk_idem_op_t fits an engine op block");

static void on_claimed(redisReply *reply, void *data)
{
    tk_idem_op_t *op = data;
    tk_idem_result_t result;
    tk_idem_parse_claim(reply, &result);
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

static void hex_sha256(h2o_iovec_t material, char *out)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)material.base, material.len, digest);
    h2o_hex_encode(out, digest, sizeof(digest));
}

int tk_idem_claim(tk_engine_t *e, const tk_idem_request_t *rq, tk_idem_claim_t *claim, tk_idem_cb cb, void *data)
{
    /* the key: method, path and the client's key; the fingerprint: the body alone */
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t material =
        h2o_concat(&pool, rq->method, h2o_iovec_init(H2O_STRLIT("\n")), rq->path, h2o_iovec_init(H2O_STRLIT("\n")), rq->key);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)material.base, material.len, digest);
    h2o_mem_clear_pool(&pool);
    tk_inventory_idem_key(digest, claim->key);
    hex_sha256(rq->body, claim->fingerprint);
    tk_uuid_v4(claim->token);

    char claim_ms[16];
    snprintf(claim_ms, sizeof(claim_ms), "%d", TK_IDEM_CLAIM_MS);
    const char *argv[] = {"FCALL", "tk_idem_claim", "1", claim->key, claim_ms, claim->fingerprint, claim->token};
    size_t argvlen[] = {5, 13, 1, TK_IDEM_KEY_LEN, strlen(claim_ms), 64, TK_UUID_LEN};
    tk_idem_op_t *op = tk_engine_op_alloc(e);
    *op = (tk_idem_op_t){.e = e, .cb = cb, .data = data};
    if (tk_redis_command(e->redis, on_claimed, op, 7, argv, argvlen) != 0) {
        tk_engine_op_free(e, op);
        return -EAGAIN;
    }
    return 0;
}

typedef struct st_tk_idem_settle_op_t {
    tk_engine_t *e;
    void (*cb)(void *data);
    void *data;
} tk_idem_settle_op_t;
_Static_assert(sizeof(tk_idem_settle_op_t) <= TK_ENGINE_OP_SIZE, "tk_idem_settle_op_t fits an engine op block");

static void on_settled(redisReply *reply, void *data)
{
    tk_idem_settle_op_t *op = data;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || !is_string(reply->element[0], "OK"))
        tk_log_warn("idempotency", "settling a claim failed; it lapses in %d s", TK_IDEM_CLAIM_MS / 1000);
    if (op->cb != NULL)
        op->cb(op->data);
    tk_engine_op_free(op->e, op);
}

static int settle_call(tk_engine_t *e, int argc, const char **argv, const size_t *argvlen, void (*cb)(void *), void *data)
{
    tk_idem_settle_op_t *op = tk_engine_op_alloc(e);
    *op = (tk_idem_settle_op_t){.e = e, .cb = cb, .data = data};
    if (tk_redis_command(e->redis, on_settled, op, argc, argv, argvlen) != 0) {
        tk_log_warn("idempotency", "settling a claim failed; it lapses in %d s", TK_IDEM_CLAIM_MS / 1000);
        tk_engine_op_free(e, op);
        return -EAGAIN;
    }
    return 0;
}

int tk_idem_release(tk_engine_t *e, const tk_idem_claim_t *claim, void (*cb)(void *data), void *data)
{
    const char *argv[] = {"FCALL", "tk_idem_release", "1", claim->key, claim->token};
    size_t argvlen[] = {5, 15, 1, TK_IDEM_KEY_LEN, TK_UUID_LEN};
    return settle_call(e, 5, argv, argvlen, cb, data);
}

int tk_idem_settle(tk_engine_t *e, const tk_idem_claim_t *claim, const tk_idem_answer_t *answer, void (*cb)(void *data), void *data)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t stored = tk_idem_encode(&pool, answer);
    int64_t keep_ms = tk_idem_keep_ms(answer->status, stored.len);
    int ret;
    if (keep_ms == 0) {
        ret = tk_idem_release(e, claim, cb, data);
    } else {
        char ttl[24];
        snprintf(ttl, sizeof(ttl), "%" PRId64, keep_ms);
        const char *argv[] = {"FCALL", "tk_idem_store", "1", claim->key, claim->token, ttl, stored.base};
        size_t argvlen[] = {5, 13, 1, TK_IDEM_KEY_LEN, TK_UUID_LEN, strlen(ttl), stored.len};
        ret = settle_call(e, 7, argv, argvlen, cb, data);
    }
    h2o_mem_clear_pool(&pool);
    return ret;
}
