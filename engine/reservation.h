/*
 * The C side of the reservation and payment functions (tk_reserve, tk_view, tk_cancel,
 * tk_expire, tk_pay_start, tk_pay_finish, tk_txn): argument vectors and the decoders of
 * their replies into the shop's typed results (engine/shop.h). One call is one Redis
 * round trip; every key it names lives under the hash tag of the reservation's shard,
 * which the reservation id carries in its first four hex digits. Engine-internal: http/
 * sees only engine/shop.h.
 */
#ifndef TK_RESERVATION_H
#define TK_RESERVATION_H

#include "engine/catalog.h"
#include "engine/fairuse.h"
#include "engine/redis_conn.h"
#include "engine/shop_types.h"

#include <h2o.h>
#include <hiredis/hiredis.h>

/* Holds lines (merged, in request order) of ev under reservation id rid; mints one
 * ticket id per ticket from pool memory. fair (NULL: none) adds the client's limits and
 * the shard's pause (engine/fairuse.h). admission: the waiting-room admission the hold
 * uses (one live hold each), NULL when the event's room is not on. The request joins its
 * shard's group commit (b); cb gets its own answer, from the end of this loop pass on. */
struct st_tk_wr_admission_t;
struct st_tk_reserve_batcher_t;
void tk_reservation_reserve(struct st_tk_reserve_batcher_t *b, const tk_event_t *ev, const char *rid, int64_t hold_ms,
                            int max_per_type, const tk_reserve_line_t *lines, size_t nlines, tk_fairuse_t *fair,
                            const struct st_tk_wr_admission_t *admission, h2o_mem_pool_t *pool, tk_redis_cb cb, void *data);
/* Fills out's outcome, type (pointing into reply), available, created_ms, until_ms and
 * retry_after_s: a fair-use or backpressure refusal, Redis' OOM refusal, the
 * reservation's own outcome, or FAILED for any other shape. */
void tk_reservation_parse_reserve(const redisReply *reply, tk_reserve_result_t *out);
int tk_reservation_view(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data);
/* 1 and the reservation (tickets in pool, strings pointing into reply); 0 when not
 * found; -1 when the reply is missing or not the expected shape */
int tk_reservation_parse_view(const redisReply *reply, h2o_mem_pool_t *pool, tk_reservation_view_t *out);
int tk_reservation_cancel(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data);
/* OK, NOT_FOUND, PAYING, COMPLETED, CANCELLED or UNAVAILABLE (no reply, or a wrong shape) */
tk_cancel_outcome_t tk_reservation_parse_cancel(const redisReply *reply);
/* releases up to limit expired holds of the shard of id (an event or reservation id) */
int tk_reservation_expire(tk_redis_t *r, const char *id, int limit, tk_redis_cb cb, void *data);

typedef enum en_tk_pay_start_outcome_t {
    TK_PAY_START_OK = 0,    /* a new transaction: charge the card */
    TK_PAY_START_IN_FLIGHT, /* a transaction is already pending: answer with it, charge nothing */
    TK_PAY_START_NOT_FOUND,
    TK_PAY_START_STATE, /* not PENDING */
    TK_PAY_START_RETRY, /* no reply or a transient error (as TK_PAY_FINISH_RETRY): the call may be sent again, same txn */
    TK_PAY_START_FAILED
} tk_pay_start_outcome_t;

typedef struct st_tk_pay_start_result_t {
    tk_pay_start_outcome_t outcome;
    h2o_iovec_t txn;      /* OK, IN_FLIGHT (points into the reply) */
    int64_t amount_minor; /* OK */
} tk_pay_start_result_t;

/* PENDING -> PAYING with transaction txn (an id in the reservation's shard); the gateway
 * is given up on after timeout_ms */
int tk_reservation_pay_start(tk_redis_t *r, const char *rid, const char *txn, int timeout_ms, tk_redis_cb cb, void *data);
void tk_reservation_parse_pay_start(const redisReply *reply, tk_pay_start_result_t *out);
/* PAYING -> COMPLETED (approved) or back to PENDING with error */
int tk_reservation_pay_finish(tk_redis_t *r, const char *rid, const char *txn, int approved, const char *error, tk_redis_cb cb,
                              void *data);

typedef enum en_tk_pay_finish_outcome_t {
    TK_PAY_FINISH_RECORDED = 0, /* the answer is recorded */
    TK_PAY_FINISH_STALE,        /* the payment was given up on before the answer came */
    TK_PAY_FINISH_RETRY,        /* no reply or a transient error (LOADING, BUSY, READONLY): send it again */
    TK_PAY_FINISH_REFUSED       /* "ERR ticketd: ...": the library refuses the call as malformed */
} tk_pay_finish_outcome_t;

tk_pay_finish_outcome_t tk_reservation_parse_pay_finish(const redisReply *reply);
int tk_reservation_txn(tk_redis_t *r, const char *txn, tk_redis_cb cb, void *data);
/* FOUND with status and error (pointing into reply), NOT_FOUND, or UNAVAILABLE */
void tk_reservation_parse_txn(const redisReply *reply, tk_txn_result_t *out);

#endif
