/*
 * The C side of the reservation functions (tk_reserve, tk_get, tk_cancel, tk_expire):
 * argument vectors and reply decoding. One call is one Redis round trip; every key it
 * names lives under the hash tag of the reservation's shard, which the reservation id
 * carries in its first four hex digits.
 */
#ifndef TK_RESERVATION_H
#define TK_RESERVATION_H

#include "engine/catalog.h"
#include "engine/fairuse.h"
#include "engine/redis_conn.h"

#include <h2o.h>
#include <hiredis/hiredis.h>

typedef struct st_tk_reserve_line_t {
    h2o_iovec_t type;
    int64_t amount;
} tk_reserve_line_t;

typedef enum en_tk_reserve_outcome_t {
    TK_RESERVE_OK = 0,
    TK_RESERVE_EMPTY,
    TK_RESERVE_BAD_AMOUNT,
    TK_RESERVE_NO_EVENT,
    TK_RESERVE_PAST,
    TK_RESERVE_EXISTS,
    TK_RESERVE_UNKNOWN_TYPE,
    TK_RESERVE_LIMIT,
    TK_RESERVE_INSUFFICIENT,
    TK_RESERVE_ADMISSION_USED, /* the waiting-room admission already holds a live or paid reservation */
    TK_RESERVE_FAILED          /* no reply, or a reply of the wrong shape */
} tk_reserve_outcome_t;

typedef struct st_tk_reserve_result_t {
    tk_reserve_outcome_t outcome;
    h2o_iovec_t type;  /* the type named by UNKNOWN_TYPE, LIMIT, INSUFFICIENT (points into the reply) */
    int64_t available; /* INSUFFICIENT: tickets left of that type */
    int64_t created_ms, until_ms;
} tk_reserve_result_t;

typedef enum en_tk_cancel_outcome_t {
    TK_CANCEL_OK = 0,
    TK_CANCEL_NOT_FOUND,
    TK_CANCEL_STATE,
    TK_CANCEL_FAILED
} tk_cancel_outcome_t;

/* Holds lines (merged, in request order) of ev under reservation id rid; mints one
 * ticket id per ticket from pool memory. fair (NULL: none) adds the client's limits and
 * the shard's pause (engine/fairuse.h); it must live until the reply. admission: the
 * waiting-room admission the hold uses (one live hold each), NULL when the event's room
 * is not on. */
struct st_tk_wr_admission_t;
int tk_reservation_reserve(tk_redis_t *r, const tk_event_t *ev, const char *rid, int64_t hold_ms, int max_per_type,
                           const tk_reserve_line_t *lines, size_t nlines, tk_fairuse_t *fair,
                           const struct st_tk_wr_admission_t *admission, h2o_mem_pool_t *pool, tk_redis_cb cb, void *data);
void tk_reservation_parse_reserve(const redisReply *reply, tk_reserve_result_t *out);
int tk_reservation_get(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data);
/* 1 and the reservation's JSON blob; 0 when not found; -1 on a failed call */
int tk_reservation_parse_get(const redisReply *reply, h2o_iovec_t *blob);
int tk_reservation_cancel(tk_redis_t *r, const char *rid, tk_redis_cb cb, void *data);
/* the outcome; for TK_CANCEL_STATE, *status names the current state (points into the reply) */
tk_cancel_outcome_t tk_reservation_parse_cancel(const redisReply *reply, h2o_iovec_t *status);
/* releases up to limit expired holds of the shard of id (an event or reservation id) */
int tk_reservation_expire(tk_redis_t *r, const char *id, int limit, tk_redis_cb cb, void *data);

typedef enum en_tk_pay_start_outcome_t {
    TK_PAY_START_OK = 0,    /* a new transaction: charge the card */
    TK_PAY_START_IN_FLIGHT, /* a transaction is already pending: answer with it, charge nothing */
    TK_PAY_START_NOT_FOUND,
    TK_PAY_START_STATE, /* not PENDING: status says what it is */
    TK_PAY_START_FAILED
} tk_pay_start_outcome_t;

typedef struct st_tk_pay_start_result_t {
    tk_pay_start_outcome_t outcome;
    h2o_iovec_t txn;      /* OK, IN_FLIGHT (points into the reply) */
    int64_t amount_minor; /* OK */
    h2o_iovec_t status;   /* STATE */
} tk_pay_start_result_t;

/* PENDING -> PAYING with transaction txn (an id in the reservation's shard); the gateway
 * is given up on after timeout_ms */
int tk_reservation_pay_start(tk_redis_t *r, const char *rid, const char *txn, int timeout_ms, tk_redis_cb cb, void *data);
void tk_reservation_parse_pay_start(const redisReply *reply, tk_pay_start_result_t *out);
/* PAYING -> COMPLETED (approved) or back to PENDING with error */
int tk_reservation_pay_finish(tk_redis_t *r, const char *rid, const char *txn, int approved, const char *error, tk_redis_cb cb,
                              void *data);
int tk_reservation_txn(tk_redis_t *r, const char *txn, tk_redis_cb cb, void *data);
/* 1 with status and error (empty when none); 0 when not found; -1 on a failed call */
int tk_reservation_parse_txn(const redisReply *reply, h2o_iovec_t *status, h2o_iovec_t *error);

#endif
