/*
 * Reservation calls. Argument vectors for tk_reserve live in the request's pool (their
 * size depends on the order); the others are small and on the stack. hiredis copies
 * every vector into its output buffer before the call returns.
 */
#include "engine/reservation.h"
#include "engine/inventory.h"
#include "engine/uuid.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static h2o_iovec_t number_in_pool(h2o_mem_pool_t *pool, int64_t v)
{
    char *buf = h2o_mem_alloc_pool(pool, 24);
    return h2o_iovec_init(buf, (size_t)snprintf(buf, 24, "%" PRId64, v));
}

int tk_reservation_reserve(tk_redis_t *r, const tk_event_t *ev, const char *rid, int64_t hold_ms, int max_per_type,
                           const tk_reserve_line_t *lines, size_t nlines, h2o_mem_pool_t *pool, tk_redis_cb cb, void *data)
{
    enum { FIXED = 11 };
    size_t ntickets = 0;
    for (size_t i = 0; i < nlines; ++i)
        ntickets += (size_t)lines[i].amount;
    size_t argc = FIXED + 2 * nlines + ntickets;
    const char **argv = h2o_mem_alloc_pool(pool, sizeof(*argv) * argc);
    size_t *argvlen = h2o_mem_alloc_pool(pool, sizeof(*argvlen) * argc);
    tk_shard_keys_t *keys = h2o_mem_alloc_pool(pool, sizeof(*keys));
    tk_shard_keys(rid, keys);

    h2o_iovec_t fixed[FIXED] = {h2o_iovec_init(H2O_STRLIT("FCALL")),
                                h2o_iovec_init(H2O_STRLIT("tk_reserve")),
                                h2o_iovec_init(H2O_STRLIT("3")),
                                h2o_iovec_init(keys->inv, strlen(keys->inv)),
                                h2o_iovec_init(keys->res, strlen(keys->res)),
                                h2o_iovec_init(keys->dl, strlen(keys->dl)),
                                h2o_iovec_init(ev->id, TK_UUID_LEN),
                                h2o_iovec_init(rid, TK_UUID_LEN),
                                number_in_pool(pool, hold_ms),
                                number_in_pool(pool, max_per_type),
                                number_in_pool(pool, (int64_t)nlines)};
    size_t k = 0;
    for (; k < FIXED; ++k) {
        argv[k] = fixed[k].base;
        argvlen[k] = fixed[k].len;
    }
    for (size_t i = 0; i < nlines; ++i) {
        h2o_iovec_t amount = number_in_pool(pool, lines[i].amount);
        argv[k] = lines[i].type.base, argvlen[k++] = lines[i].type.len;
        argv[k] = amount.base, argvlen[k++] = amount.len;
    }
    for (size_t i = 0; i < ntickets; ++i) {
        char *id = h2o_mem_alloc_pool(pool, TK_UUID_LEN + 1);
        tk_uuid_v4(id);
        argv[k] = id, argvlen[k++] = TK_UUID_LEN;
    }
    return tk_redis_command(r, cb, data, (int)argc, argv, argvlen);
}

static int is_string(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ? h2o_memis(r->str, r->len, s, strlen(s)) : 0;
}

void tk_reservation_parse_reserve(const redisReply *reply, tk_reserve_result_t *out)
{
    static const struct {
        const char *reason;
        tk_reserve_outcome_t outcome;
    } reasons[] = {{"empty", TK_RESERVE_EMPTY},       {"bad_amount", TK_RESERVE_BAD_AMOUNT},
                   {"no_event", TK_RESERVE_NO_EVENT}, {"past", TK_RESERVE_PAST},
                   {"exists", TK_RESERVE_EXISTS},     {"unknown_type", TK_RESERVE_UNKNOWN_TYPE},
                   {"limit", TK_RESERVE_LIMIT},       {"insufficient", TK_RESERVE_INSUFFICIENT}};
    memset(out, 0, sizeof(*out));
    out->outcome = TK_RESERVE_FAILED;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return;
    if (is_string(reply->element[0], "OK")) {
        if (reply->elements == 3 && reply->element[1]->type == REDIS_REPLY_INTEGER &&
            reply->element[2]->type == REDIS_REPLY_INTEGER) {
            out->outcome = TK_RESERVE_OK;
            out->created_ms = reply->element[1]->integer;
            out->until_ms = reply->element[2]->integer;
        }
        return;
    }
    if (!is_string(reply->element[0], "ERR") || reply->elements < 2)
        return;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); ++i) {
        if (is_string(reply->element[1], reasons[i].reason)) {
            out->outcome = reasons[i].outcome;
            break;
        }
    }
    if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_STRING)
        out->type = h2o_iovec_init(reply->element[2]->str, reply->element[2]->len);
    if (reply->elements >= 4 && reply->element[3]->type == REDIS_REPLY_INTEGER)
        out->available = reply->element[3]->integer;
}

/* FCALL fn 3 <shard keys of id> arg */
static int call_by_id(tk_redis_t *r, const char *fn, const char *id, const char *arg, size_t arglen, tk_redis_cb cb, void *data)
{
    tk_shard_keys_t keys;
    tk_shard_keys(id, &keys);
    const char *argv[] = {"FCALL", fn, "3", keys.inv, keys.res, keys.dl, arg};
    size_t argvlen[] = {5, strlen(fn), 1, strlen(keys.inv), strlen(keys.res), strlen(keys.dl), arglen};
    return tk_redis_command(r, cb, data, 7, argv, argvlen);
}

int tk_reservation_get(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data)
{
    return call_by_id(r, "tk_get", rid, rid, TK_UUID_LEN, cb, data);
}

int tk_reservation_parse_get(const redisReply *reply, h2o_iovec_t *blob)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return -1;
    if (is_string(reply->element[0], "OK") && reply->element[1]->type == REDIS_REPLY_STRING) {
        *blob = h2o_iovec_init(reply->element[1]->str, reply->element[1]->len);
        return 1;
    }
    return is_string(reply->element[0], "ERR") && is_string(reply->element[1], "not_found") ? 0 : -1;
}

int tk_reservation_cancel(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data)
{
    return call_by_id(r, "tk_cancel", rid, rid, TK_UUID_LEN, cb, data);
}

tk_cancel_outcome_t tk_reservation_parse_cancel(const redisReply *reply, h2o_iovec_t *status)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return TK_CANCEL_FAILED;
    if (is_string(reply->element[0], "OK"))
        return TK_CANCEL_OK;
    if (reply->elements >= 2 && is_string(reply->element[1], "not_found"))
        return TK_CANCEL_NOT_FOUND;
    if (reply->elements >= 3 && is_string(reply->element[1], "state") && reply->element[2]->type == REDIS_REPLY_STRING) {
        *status = h2o_iovec_init(reply->element[2]->str, reply->element[2]->len);
        return TK_CANCEL_STATE;
    }
    return TK_CANCEL_FAILED;
}

int tk_reservation_expire(tk_redis_t *r, const char *id, int limit, tk_redis_cb cb, void *data)
{
    char arg[16];
    int len = snprintf(arg, sizeof(arg), "%d", limit);
    return call_by_id(r, "tk_expire", id, arg, (size_t)len, cb, data);
}
