/*
 * Reservation and payment calls, and the decoders of their replies. Argument vectors
 * for tk_reserve live in a caller's pool (their size depends on the order) and go to the
 * shard's group commit (engine/reserve_batch.h), which copies them; the others are small
 * and on the stack. hiredis copies every vector into its output buffer before
 * the call returns. Decoders trust nothing: a reply of any other shape is a failure.
 */
#include "engine/reservation.h"
#include "engine/inventory.h"
#include "engine/reserve_batch.h"
#include "engine/shard_activity.h"
#include "engine/uuid.h"
#include "engine/waitroom_view.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static h2o_iovec_t number_in_pool(h2o_mem_pool_t *pool, int64_t v)
{
    char *buf = h2o_mem_alloc_pool(pool, 24);
    return h2o_iovec_init(buf, (size_t)snprintf(buf, 24, "%" PRId64, v));
}

void tk_reservation_reserve(tk_reserve_batcher_t *b, const tk_event_t *ev, const char *rid, int64_t hold_ms, int max_per_type,
                            const tk_reserve_line_t *lines, size_t nlines, tk_fairuse_t *fair,
                            const struct st_tk_wr_admission_t *admission, h2o_mem_pool_t *pool, tk_redis_cb cb, void *data)
{
    enum { FIXED = 5, ADMISSION = 2 };
    size_t ntickets = 0;
    for (size_t i = 0; i < nlines; ++i)
        ntickets += (size_t)lines[i].amount;
    size_t argc = (fair != NULL ? TK_FAIRUSE_NARGS : 0) + FIXED + 2 * nlines + ntickets + (admission != NULL ? ADMISSION : 0);
    const char **argv = h2o_mem_alloc_pool(pool, sizeof(*argv) * argc);
    size_t *argvlen = h2o_mem_alloc_pool(pool, sizeof(*argvlen) * argc);
    /* the fair-use arguments lead ARGV, the admission's end it (their keys are the batch's) */
    size_t k = fair != NULL ? tk_fairuse_args(fair, argv, argvlen, 0) : 0;
    h2o_iovec_t fixed[] = {h2o_iovec_init(ev->id, TK_UUID_LEN), h2o_iovec_init(rid, TK_UUID_LEN), number_in_pool(pool, hold_ms),
                           number_in_pool(pool, max_per_type), number_in_pool(pool, (int64_t)nlines)};
    for (size_t i = 0; i < FIXED; ++i, ++k) {
        argv[k] = fixed[i].base;
        argvlen[k] = fixed[i].len;
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
    if (admission != NULL)
        k = tk_waitroom_admission_args(admission, pool, argv, argvlen, k);
    tk_reserve_batcher_add(b, rid, fair != NULL, admission != NULL, k, argv, argvlen, cb, data);
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
    } reasons[] = {{"empty", TK_RESERVE_EMPTY},
                   {"bad_amount", TK_RESERVE_BAD_AMOUNT},
                   {"no_event", TK_RESERVE_NO_EVENT},
                   {"past", TK_RESERVE_PAST},
                   {"exists", TK_RESERVE_EXISTS},
                   {"unknown_type", TK_RESERVE_UNKNOWN_TYPE},
                   {"limit", TK_RESERVE_LIMIT},
                   {"insufficient", TK_RESERVE_INSUFFICIENT},
                   {"admission_used", TK_RESERVE_ADMISSION_USED}};
    memset(out, 0, sizeof(*out));
    out->outcome = TK_RESERVE_FAILED;
    switch (tk_fairuse_parse_refusal(reply, &out->retry_after_s)) {
    case TK_FAIRUSE_ADMITTED:
        break;
    case TK_FAIRUSE_TOO_MANY:
        out->outcome = TK_RESERVE_TOO_MANY;
        return;
    case TK_FAIRUSE_PAUSED:
        out->outcome = TK_RESERVE_PAUSED;
        return;
    case TK_FAIRUSE_OUT_OF_MEMORY:
        out->outcome = TK_RESERVE_OUT_OF_MEMORY;
        return;
    }
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

/* FCALL fn 7 <shard keys of id> args...; durable: answered once a replica has the write
 * (tk_redis_command_durable), for the one write a shopper is told "COMPLETED" on. Each
 * of these calls may append to the shard's outbox: the shard is noted as written to
 * (shard_activity.h), so this process's writers read its stream at once on a cluster. */
static int call_by_id(tk_redis_t *r, const char *fn, const char *id, size_t nargs, const char *const *args, const size_t *lens,
                      int durable, tk_redis_cb cb, void *data)
{
    enum { MAX_ARGS = 4 };
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + MAX_ARGS];
    size_t argvlen[TK_FCALL_PREFIX_LEN + MAX_ARGS];
    tk_shard_keys(id, &keys);
    tk_shard_touch(id);
    int argc = tk_fcall_prefix(fn, &keys, argv, argvlen);
    for (size_t i = 0; i < nargs && i < MAX_ARGS; ++i, ++argc) {
        argv[argc] = args[i];
        argvlen[argc] = lens != NULL ? lens[i] : strlen(args[i]);
    }
    return durable ? tk_redis_command_durable(r, cb, data, argc, argv, argvlen)
                   : tk_redis_command(r, cb, data, argc, argv, argvlen);
}

/* Whether a tk_view or tk_txn reply says COMPLETED ({"OK", "COMPLETED", …}): then, on a
 * cluster, it is delivered only once a replica has the payment (tk_redis_command_fenced),
 * so no shopper is told of a purchase a failover could take back. */
static int reports_completed(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 && is_string(reply->element[0], "OK") &&
           is_string(reply->element[1], "COMPLETED");
}

/* FCALL fn 7 <shard keys of id> id, fenced when it reports COMPLETED */
static int read_by_id(tk_redis_t *r, const char *fn, const char *id, tk_redis_cb cb, void *data)
{
    tk_shard_keys_t keys;
    const char *argv[TK_FCALL_PREFIX_LEN + 1];
    size_t argvlen[TK_FCALL_PREFIX_LEN + 1];
    char fence[TK_KEY_LEN];
    tk_shard_keys(id, &keys);
    tk_shard_fence_key(id, fence);
    int argc = tk_fcall_prefix(fn, &keys, argv, argvlen);
    argv[argc] = id, argvlen[argc++] = strlen(id);
    return tk_redis_command_fenced(r, fence, reports_completed, cb, data, argc, argv, argvlen);
}

int tk_reservation_view(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data)
{
    return read_by_id(r, "tk_view", rid, cb, data);
}

int tk_reservation_parse_view(const redisReply *reply, h2o_mem_pool_t *pool, tk_reservation_view_t *out)
{
    enum { HEADER = 5, PER_TICKET = 3 };
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return -1;
    redisReply **e = reply->element;
    if (is_string(e[0], "ERR"))
        return reply->elements == 2 && is_string(e[1], "not_found") ? 0 : -1;
    if (!is_string(e[0], "OK") || reply->elements < HEADER || (reply->elements - HEADER) % PER_TICKET != 0 ||
        e[1]->type != REDIS_REPLY_STRING || tk_res_status_parse(e[1]->str, e[1]->len, &out->status) != 0 ||
        e[2]->type != REDIS_REPLY_STRING || tk_uuid_normalize(e[2]->str, e[2]->len, out->event) != 0 ||
        e[3]->type != REDIS_REPLY_INTEGER || e[4]->type != REDIS_REPLY_INTEGER)
        return -1;
    out->created_ms = e[3]->integer;
    out->until_ms = e[4]->integer;
    out->ntickets = (reply->elements - HEADER) / PER_TICKET;
    tk_ticket_view_t *tickets = h2o_mem_alloc_pool(pool, sizeof(*tickets) * (out->ntickets + 1));
    for (size_t i = 0; i < out->ntickets; ++i) {
        redisReply **t = e + HEADER + PER_TICKET * i;
        if (t[0]->type != REDIS_REPLY_STRING || t[0]->len != TK_UUID_LEN || t[1]->type != REDIS_REPLY_STRING ||
            t[2]->type != REDIS_REPLY_INTEGER)
            return -1;
        tickets[i] = (tk_ticket_view_t){
            .id = h2o_iovec_init(t[0]->str, t[0]->len), .type = h2o_iovec_init(t[1]->str, t[1]->len), .price_minor = t[2]->integer};
    }
    out->tickets = tickets;
    return 1;
}

int tk_reservation_cancel(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data)
{
    return call_by_id(r, "tk_cancel", rid, 1, &rid, NULL, 0, cb, data);
}

tk_cancel_outcome_t tk_reservation_parse_cancel(const redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)
        return TK_CANCEL_UNAVAILABLE;
    redisReply **e = reply->element;
    if (is_string(e[0], "OK"))
        return reply->elements == 1 ? TK_CANCEL_OK : TK_CANCEL_UNAVAILABLE;
    if (!is_string(e[0], "ERR") || reply->elements < 2)
        return TK_CANCEL_UNAVAILABLE;
    if (reply->elements == 2 && is_string(e[1], "not_found"))
        return TK_CANCEL_NOT_FOUND;
    if (reply->elements == 3 && is_string(e[1], "state")) {
        if (is_string(e[2], "PAYING"))
            return TK_CANCEL_PAYING;
        if (is_string(e[2], "COMPLETED"))
            return TK_CANCEL_COMPLETED;
        if (is_string(e[2], "CANCELLED"))
            return TK_CANCEL_CANCELLED;
    }
    return TK_CANCEL_UNAVAILABLE;
}

int tk_reservation_expire(tk_redis_t *r, const char *id, int limit, tk_redis_cb cb, void *data)
{
    char arg[16];
    snprintf(arg, sizeof(arg), "%d", limit);
    const char *args[] = {arg};
    return call_by_id(r, "tk_expire", id, 1, args, NULL, 0, cb, data);
}

int tk_reservation_pay_start(tk_redis_t *r, const char *rid, const char *txn, int timeout_ms, tk_redis_cb cb, void *data)
{
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", timeout_ms);
    const char *args[] = {rid, txn, timeout};
    return call_by_id(r, "tk_pay_start", rid, 3, args, NULL, 0, cb, data);
}

/* Whether a payment call's reply says the call may be sent again: no reply (the link was
 * lost, the call may or may not have run) or an error from Redis rather than from the
 * library (LOADING, BUSY, READONLY, OOM, NOREPLICA…), which "ERR ticketd:" starts. */
static int pay_call_transient(const redisReply *reply)
{
    static const char refused[] = "ERR ticketd:";
    return reply == NULL || (reply->type == REDIS_REPLY_ERROR &&
                             (reply->len < sizeof(refused) - 1 || memcmp(reply->str, refused, sizeof(refused) - 1) != 0));
}

void tk_reservation_parse_pay_start(const redisReply *reply, tk_pay_start_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->outcome = pay_call_transient(reply) ? TK_PAY_START_RETRY : TK_PAY_START_FAILED;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return;
    redisReply **e = reply->element;
    if (is_string(e[0], "OK") && reply->elements == 3 && e[1]->type == REDIS_REPLY_STRING && e[2]->type == REDIS_REPLY_INTEGER) {
        out->outcome = TK_PAY_START_OK;
        out->txn = h2o_iovec_init(e[1]->str, e[1]->len);
        out->amount_minor = e[2]->integer;
    } else if (is_string(e[0], "EXISTS") && e[1]->type == REDIS_REPLY_STRING) {
        out->outcome = TK_PAY_START_IN_FLIGHT;
        out->txn = h2o_iovec_init(e[1]->str, e[1]->len);
    } else if (is_string(e[0], "ERR") && is_string(e[1], "not_found")) {
        out->outcome = TK_PAY_START_NOT_FOUND;
    } else if (is_string(e[0], "ERR") && is_string(e[1], "state") && reply->elements == 3 && e[2]->type == REDIS_REPLY_STRING) {
        out->outcome = TK_PAY_START_STATE;
    }
}

int tk_reservation_pay_finish(tk_redis_t *r, const char *rid, const char *txn, int approved, const char *error, tk_redis_cb cb,
                              void *data)
{
    const char *args[] = {rid, txn, approved ? "ok" : "fail", error != NULL ? error : ""};
    return call_by_id(r, "tk_pay_finish", rid, 4, args, NULL, 1, cb, data);
}

tk_pay_finish_outcome_t tk_reservation_parse_pay_finish(const redisReply *reply)
{
    if (pay_call_transient(reply))
        return TK_PAY_FINISH_RETRY;
    if (reply->type == REDIS_REPLY_ERROR)
        return TK_PAY_FINISH_REFUSED;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && is_string(reply->element[0], "OK"))
        return TK_PAY_FINISH_RECORDED;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && is_string(reply->element[0], "ERR"))
        return TK_PAY_FINISH_STALE;
    return TK_PAY_FINISH_REFUSED;
}

int tk_reservation_txn(tk_redis_t *r, const char *txn, tk_redis_cb cb, void *data)
{
    return read_by_id(r, "tk_txn", txn, cb, data);
}

void tk_reservation_parse_txn(const redisReply *reply, tk_txn_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->outcome = TK_TXN_UNAVAILABLE;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return;
    redisReply **e = reply->element;
    if (is_string(e[0], "OK") && reply->elements == 3 &&
        (is_string(e[1], "PENDING") || is_string(e[1], "COMPLETED") || is_string(e[1], "ERROR")) &&
        e[2]->type == REDIS_REPLY_STRING) {
        out->outcome = TK_TXN_FOUND;
        out->status = h2o_iovec_init(e[1]->str, e[1]->len);
        out->error = h2o_iovec_init(e[2]->str, e[2]->len);
    } else if (reply->elements == 2 && is_string(e[0], "ERR") && is_string(e[1], "not_found")) {
        out->outcome = TK_TXN_NOT_FOUND;
    }
}
