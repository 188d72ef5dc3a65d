/*
 * The shop: every reservation and payment operation a route needs, as engine calls that
 * take a typed request and answer through a typed callback. libuv's rule holds: a call
 * that returns 0 runs its callback exactly once (on the calling loop, possibly before the
 * call returns when the engine can answer from memory); a call that returns a negative
 * error never runs it. The callback runs even when the HTTP client has gone, so that work
 * already done (a hold, a payment) is always reported to whoever keeps its answer. A
 * result and everything it points to is valid only while the callback runs. Behind these
 * calls the engine owns the Redis conversations, the charge lifecycle (gateway call,
 * retries, settlement), the decoding of replies and the fallback to PostgreSQL for
 * records that have left Redis. Statuses are the API's: a reservation whose payment is
 * in flight reads as PENDING (lua/ticketd.lua, public_status, owns that rule). The
 * requests and results are in engine/shop_types.h. This header pulls in no hiredis or
 * libpq header.
 */
#ifndef TK_SHOP_H
#define TK_SHOP_H

#include "engine/engine.h"
#include "engine/shop_types.h"

#include <h2o.h>
#include <stdint.h>

/* Holds the lines of an event, all or none, under a fresh reservation id, for the
 * configured hold time. The request is copied: its memory need not outlive the call.
 * It joins its shard's group commit (engine/reserve_batch.h), so cb runs at the end of
 * this loop pass at the earliest; when Redis cannot take the call, cb gets FAILED then.
 * Returns 0 (kept an int for the shop's uniform calls). */
int tk_shop_reserve(tk_engine_t *e, const tk_reserve_request_t *rq, tk_reserve_cb cb, void *data);

/* Reads a reservation from Redis, or from PostgreSQL once it has left Redis. */
int tk_shop_get(tk_engine_t *e, const tk_get_request_t *rq, tk_get_cb cb, void *data);

/* PENDING -> CANCELLED; the tickets return to sale at once. */
int tk_shop_cancel(tk_engine_t *e, const tk_cancel_request_t *rq, tk_cancel_cb cb, void *data);

/* Starts paying a reservation: PENDING -> PAYING with a new transaction, then the gateway
 * charge, then its answer recorded (retried until Redis takes it). cb runs once the
 * transaction exists; the charge and its settlement go on after it, whoever waits. */
int tk_shop_pay(tk_engine_t *e, const tk_pay_request_t *rq, tk_pay_cb cb, void *data);

/* Reads a transaction from Redis, or from PostgreSQL once it has left Redis. */
int tk_shop_txn(tk_engine_t *e, const tk_txn_request_t *rq, tk_txn_cb cb, void *data);

#endif
