/*
 * The shop's reservation calls: reserve, get and cancel. Each operation in flight is a
 * small heap block (it must outlive a client that went away, and the request's pool with
 * it), freed after its callback. A hold refused by the sold-out table is answered at once;
 * everything else is one FCALL, then, for a reservation Redis no longer has, one read of
 * PostgreSQL on a worker (engine/shop_store.c).
 */
#include "engine/shop.h"
#include "engine/fairuse.h"
#include "engine/reservation.h"
#include "engine/shop_store.h"
#include "engine/timefmt.h"

#include <errno.h>
#include <string.h>

/* ---- reserve ---- */

typedef struct st_tk_reserve_op_t {
    tk_engine_t *e;
    tk_reserve_cb cb;
    void *data;
    char event[TK_UUID_LEN + 1];
    char rid[TK_UUID_LEN + 1];
} tk_reserve_op_t;
_Static_assert(sizeof(tk_reserve_op_t) <= TK_ENGINE_OP_SIZE, "tk_reserve_op_t fits an engine op block");

static void on_reserved(redisReply *reply, void *data)
{
    tk_reserve_op_t *op = data;
    tk_reserve_result_t result;
    tk_reservation_parse_reserve(reply, &result);
    memcpy(result.rid, op->rid, sizeof(result.rid));
    if (result.outcome == TK_RESERVE_INSUFFICIENT && result.available == 0)
        tk_soldout_mark(&op->e->soldout, op->event, result.type.base, result.type.len, tk_time_now_ms());
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

int tk_shop_reserve(tk_engine_t *e, const tk_reserve_request_t *rq, tk_reserve_cb cb, void *data)
{
    /* exact only for the first line: an earlier short line would be named first */
    if (rq->nlines != 0 &&
        tk_soldout_check(&e->soldout, rq->event->id, rq->lines[0].type.base, rq->lines[0].type.len, tk_time_now_ms())) {
        tk_metrics_inc(&e->metrics->soldout_fast_path);
        tk_reserve_result_t result = {.outcome = TK_RESERVE_INSUFFICIENT, .type = rq->lines[0].type, .from_memory = 1};
        cb(&result, data);
        return 0;
    }
    tk_reserve_op_t *op = tk_engine_op_alloc(e);
    *op = (tk_reserve_op_t){.e = e, .cb = cb, .data = data};
    memcpy(op->event, rq->event->id, sizeof(op->event));
    tk_uuid_v4_in_shard(op->rid, rq->event->id);
    tk_fairuse_t fair;
    tk_fairuse_init(&fair, e->config, rq->client);
    h2o_mem_pool_t pool; /* the argument vector: the group commit copies it */
    h2o_mem_init_pool(&pool);
    tk_reservation_reserve(e->reserve_batch, rq->event, op->rid, (int64_t)e->config->hold_seconds * 1000, e->config->max_per_type,
                           rq->lines, rq->nlines, &fair, rq->admission, &pool, on_reserved, op);
    h2o_mem_clear_pool(&pool);
    return 0;
}

/* ---- get ---- */

typedef struct st_tk_get_op_t {
    tk_engine_t *e;
    tk_get_cb cb;
    void *data;
    char rid[TK_UUID_LEN + 1];
} tk_get_op_t;
_Static_assert(sizeof(tk_get_op_t) <= TK_ENGINE_OP_SIZE, "tk_get_op_t fits an engine op block");

static void on_stored_reservation(const tk_shop_stored_t *stored, void *data)
{
    tk_get_op_t *op = data;
    tk_get_result_t result = {.outcome = stored->found > 0    ? TK_GET_FOUND
                                         : stored->found == 0 ? TK_GET_NOT_FOUND
                                                              : TK_GET_UNAVAILABLE,
                              .reservation = stored->found > 0 ? &stored->reservation : NULL};
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

static void on_viewed(redisReply *reply, void *data)
{
    tk_get_op_t *op = data;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    tk_reservation_view_t view;
    int found = tk_reservation_parse_view(reply, &pool, &view);
    if (found == 0 && tk_shop_read_reservation(op->e, op->rid, on_stored_reservation, op) == 0) {
        h2o_mem_clear_pool(&pool);
        return; /* PostgreSQL answers */
    }
    /* no reply, a reply we cannot read, or no worker free: a failure, not a 404 */
    tk_get_result_t result = {.outcome = found > 0 ? TK_GET_FOUND : TK_GET_UNAVAILABLE, .reservation = found > 0 ? &view : NULL};
    op->cb(&result, op->data);
    h2o_mem_clear_pool(&pool);
    tk_engine_op_free(op->e, op);
}

int tk_shop_get(tk_engine_t *e, const tk_get_request_t *rq, tk_get_cb cb, void *data)
{
    tk_get_op_t *op = tk_engine_op_alloc(e);
    *op = (tk_get_op_t){.e = e, .cb = cb, .data = data};
    memcpy(op->rid, rq->rid, sizeof(op->rid));
    if (tk_reservation_view(e->redis, op->rid, on_viewed, op) != 0) {
        tk_engine_op_free(op->e, op);
        return -EAGAIN;
    }
    return 0;
}

/* ---- cancel ---- */

typedef struct st_tk_cancel_op_t {
    tk_engine_t *e;
    tk_cancel_cb cb;
    void *data;
    char rid[TK_UUID_LEN + 1];
} tk_cancel_op_t;
_Static_assert(sizeof(tk_cancel_op_t) <= TK_ENGINE_OP_SIZE, "tk_cancel_op_t fits an engine op block");

/* A reservation that has left Redis is finished: it cannot be cancelled any more. */
static void on_stored_for_cancel(const tk_shop_stored_t *stored, void *data)
{
    tk_cancel_op_t *op = data;
    tk_cancel_result_t result = {.outcome = stored->found > 0    ? TK_CANCEL_FINISHED
                                            : stored->found == 0 ? TK_CANCEL_NOT_FOUND
                                                                 : TK_CANCEL_UNAVAILABLE};
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

static void on_cancelled(redisReply *reply, void *data)
{
    tk_cancel_op_t *op = data;
    tk_cancel_result_t result = {.outcome = tk_reservation_parse_cancel(reply)};
    if (result.outcome == TK_CANCEL_NOT_FOUND && tk_shop_read_reservation(op->e, op->rid, on_stored_for_cancel, op) == 0)
        return;
    if (result.outcome == TK_CANCEL_NOT_FOUND)
        result.outcome = TK_CANCEL_UNAVAILABLE; /* no worker free to ask PostgreSQL */
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

int tk_shop_cancel(tk_engine_t *e, const tk_cancel_request_t *rq, tk_cancel_cb cb, void *data)
{
    tk_cancel_op_t *op = tk_engine_op_alloc(e);
    *op = (tk_cancel_op_t){.e = e, .cb = cb, .data = data};
    memcpy(op->rid, rq->rid, sizeof(op->rid));
    if (tk_reservation_cancel(e->redis, op->rid, on_cancelled, op) != 0) {
        tk_engine_op_free(op->e, op);
        return -EAGAIN;
    }
    return 0;
}
