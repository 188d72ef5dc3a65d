/*
 * The shop's payment calls and the charge lifecycle. tk_shop_pay moves a PENDING hold to
 * PAYING with a new transaction (one FCALL, compare-and-set) and reports at once; the
 * card is then charged through the gateway, and the gateway's answer is recorded with a
 * second FCALL (tk_pay_finish), retried until Redis takes it: the reservation stays
 * PAYING meanwhile, and nothing a client does can lose an answer the gateway gave. A
 * repeated pay while a payment is in flight gets that transaction back and charges
 * nothing. When the first FCALL's reply is lost (the link dropped: it may have run) or is
 * a transient error, the same call with the same transaction is sent again, every
 * e->retry_timeout, for PAY_START_RETRY_MS at most (the client is waiting; then 503):
 * tk_pay_start answers OK again to the transaction the reservation is paying with, so
 * the op that made the id, and only it, learns that the charge is its to start, once.
 * tk_shop_txn reads a transaction from Redis while it is live, from PostgreSQL after.
 */
#include "engine/log.h"
#include "engine/payment.h"
#include "engine/reservation.h"
#include "engine/shop.h"
#include "engine/shop_store.h"
#include "engine/timefmt.h"

#include <errno.h>
#include <string.h>

#define GATEWAY_TIMEOUT_MS 30000
#define MAX_CARD_LEN 32
#define PAY_START_RETRY_MS 3000

/* A charge between the gateway's answer and Redis recording it. */
typedef struct st_tk_charge_t {
    tk_engine_t *e;
    char rid[TK_UUID_LEN + 1], txn[TK_UUID_LEN + 1];
    int approved;
    const char *error;
    h2o_timeout_entry_t retry;
} tk_charge_t;
_Static_assert(sizeof(tk_charge_t) <= TK_ENGINE_OP_SIZE, "tk_charge_t fits an engine op block");

static void record_answer(tk_charge_t *charge);

static void on_recorded(redisReply *reply, void *data)
{
    tk_charge_t *charge = data;
    switch (tk_reservation_parse_pay_finish(reply)) {
    case TK_PAY_FINISH_RETRY:
        /* no reply, or a transient error (LOADING after a restart, BUSY, READONLY, NOREPLICA:
         * recorded on a cluster master but on no replica yet): the gateway's answer must
         * not be lost, so try again; a repeat of a recorded answer changes nothing, and its
         * WAIT covers the first one */
        if (reply != NULL)
            tk_log_warn("payment", "recording transaction %s: %s; retrying", charge->txn, reply->str);
        h2o_timeout_link(charge->e->loop, &charge->e->retry_timeout, &charge->retry);
        return;
    case TK_PAY_FINISH_RECORDED:
        tk_metrics_inc(charge->approved ? &charge->e->metrics->payments_completed : &charge->e->metrics->payments_failed);
        break;
    case TK_PAY_FINISH_STALE:
        tk_log_warn("payment", "transaction %s was already settled (given up on, or recorded by an earlier attempt)", charge->txn);
        break;
    case TK_PAY_FINISH_REFUSED:
        tk_log_error("payment", "recording transaction %s failed: %s", charge->txn,
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        break;
    }
    __atomic_fetch_sub(&charge->e->charges_in_flight, 1, __ATOMIC_RELAXED);
    tk_engine_op_free(charge->e, charge);
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    record_answer(H2O_STRUCT_FROM_MEMBER(tk_charge_t, retry, entry));
}

static void record_answer(tk_charge_t *charge)
{
    if (tk_reservation_pay_finish(charge->e->redis, charge->rid, charge->txn, charge->approved, charge->error, on_recorded,
                                  charge) != 0)
        h2o_timeout_link(charge->e->loop, &charge->e->retry_timeout, &charge->retry);
}

static void on_charged(tk_charge_outcome_t outcome, const char *error, void *data)
{
    tk_charge_t *charge = data;
    charge->approved = outcome == TK_CHARGE_APPROVED;
    charge->error = error;
    record_answer(charge);
}

/* Charges card for the transaction just started; runs to its recorded end on its own. */
static void start_charge(tk_engine_t *e, const char *rid, h2o_iovec_t txn, const char *card, int64_t amount_minor)
{
    tk_charge_t *charge = tk_engine_op_alloc(e);
    *charge = (tk_charge_t){.e = e, .retry = {.cb = on_retry}};
    __atomic_fetch_add(&e->charges_in_flight, 1, __ATOMIC_RELAXED);
    memcpy(charge->rid, rid, sizeof(charge->rid));
    snprintf(charge->txn, sizeof(charge->txn), "%.*s", (int)txn.len, txn.base);
    if (e->gateway->charge(e->gateway, charge->txn, card, amount_minor, on_charged, charge) != 0)
        on_charged(TK_CHARGE_FAILED, "Payment gateway unavailable", charge);
}

typedef struct st_tk_pay_op_t {
    tk_engine_t *e;
    tk_pay_cb cb;
    void *data;
    char rid[TK_UUID_LEN + 1];
    char txn[TK_UUID_LEN + 1]; /* made for this op: only it sends tk_pay_start with it */
    char card[MAX_CARD_LEN + 1];
    int64_t give_up_ms; /* monotonic: no resending of tk_pay_start after it */
    h2o_timeout_entry_t resend;
} tk_pay_op_t;
_Static_assert(sizeof(tk_pay_op_t) <= TK_ENGINE_OP_SIZE, "tk_pay_op_t fits an engine op block");

/* A reservation that has left Redis is finished: it cannot be paid any more. */
static void on_stored_for_payment(const tk_shop_stored_t *stored, void *data)
{
    tk_pay_op_t *op = data;
    tk_pay_result_t result = {.outcome = stored->found > 0    ? TK_PAY_NOT_PAYABLE
                                         : stored->found == 0 ? TK_PAY_NOT_FOUND
                                                              : TK_PAY_UNAVAILABLE};
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

static void on_pay_started(redisReply *reply, void *data);

static int send_pay_start(tk_pay_op_t *op)
{
    return tk_reservation_pay_start(op->e->redis, op->rid, op->txn, GATEWAY_TIMEOUT_MS + op->e->config->payment_latency_ms,
                                    on_pay_started, op);
}

/* Puts op on the retry timer to send tk_pay_start again, unless its time is up (0). While
 * it waits it counts as a charge in flight: a shutdown waits for it, as the charge it may
 * start. */
static int resend_later(tk_pay_op_t *op)
{
    if (tk_time_mono_ms() >= op->give_up_ms)
        return 0;
    __atomic_fetch_add(&op->e->charges_in_flight, 1, __ATOMIC_RELAXED);
    h2o_timeout_link(op->e->loop, &op->e->retry_timeout, &op->resend);
    return 1;
}

/* The link may not be back yet (the send fails at once): then the timer again. */
static void on_resend(h2o_timeout_entry_t *entry)
{
    tk_pay_op_t *op = H2O_STRUCT_FROM_MEMBER(tk_pay_op_t, resend, entry);
    __atomic_fetch_sub(&op->e->charges_in_flight, 1, __ATOMIC_RELAXED);
    if (send_pay_start(op) == 0 || resend_later(op))
        return;
    tk_pay_result_t result = {.outcome = TK_PAY_UNAVAILABLE};
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

/* tk_pay_start's answer. OK is the one answer that starts a charge, and only this op,
 * which made the transaction id, ever sends it: a repeat after a lost reply that had run
 * answers OK (the first answer never arrived, so no charge started), and one that had not
 * run starts the payment now; either way one charge per transaction. */
static void on_pay_started(redisReply *reply, void *data)
{
    tk_pay_op_t *op = data;
    tk_pay_start_result_t started;
    tk_reservation_parse_pay_start(reply, &started);
    tk_pay_result_t result = {.outcome = TK_PAY_UNAVAILABLE};
    switch (started.outcome) {
    case TK_PAY_START_OK:
    case TK_PAY_START_IN_FLIGHT:
        if (started.txn.len != TK_UUID_LEN)
            break;
        result.outcome = TK_PAY_STARTED;
        result.in_flight = started.outcome == TK_PAY_START_IN_FLIGHT;
        memcpy(result.txn, started.txn.base, TK_UUID_LEN);
        if (started.outcome == TK_PAY_START_OK)
            start_charge(op->e, op->rid, started.txn, op->card, started.amount_minor);
        break;
    case TK_PAY_START_NOT_FOUND:
        if (tk_shop_read_reservation(op->e, op->rid, on_stored_for_payment, op) == 0)
            return;
        break;
    case TK_PAY_START_STATE:
        result.outcome = TK_PAY_NOT_PAYABLE;
        break;
    case TK_PAY_START_RETRY:
        tk_log_warn("payment", "starting transaction %s: %s; sending it again", op->txn, reply != NULL ? reply->str : "no reply");
        if (resend_later(op))
            return;
        break;
    case TK_PAY_START_FAILED:
        break;
    }
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

int tk_shop_pay(tk_engine_t *e, const tk_pay_request_t *rq, tk_pay_cb cb, void *data)
{
    if (strlen(rq->card) > MAX_CARD_LEN)
        return -EINVAL;
    tk_pay_op_t *op = tk_engine_op_alloc(e);
    *op = (tk_pay_op_t){
        .e = e, .cb = cb, .data = data, .give_up_ms = tk_time_mono_ms() + PAY_START_RETRY_MS, .resend = {.cb = on_resend}};
    memcpy(op->rid, rq->rid, sizeof(op->rid));
    memcpy(op->card, rq->card, strlen(rq->card) + 1);
    tk_uuid_v4_in_shard(op->txn, op->rid);
    if (send_pay_start(op) != 0) {
        tk_engine_op_free(op->e, op);
        return -EAGAIN;
    }
    return 0;
}

typedef struct st_tk_txn_op_t {
    tk_engine_t *e;
    tk_txn_cb cb;
    void *data;
    char txn[TK_UUID_LEN + 1];
} tk_txn_op_t;
_Static_assert(sizeof(tk_txn_op_t) <= TK_ENGINE_OP_SIZE, "tk_txn_op_t fits an engine op block");

static void on_stored_transaction(const tk_shop_stored_t *stored, void *data)
{
    tk_txn_op_t *op = data;
    tk_txn_result_t result = {.outcome = stored->found == 0 ? TK_TXN_NOT_FOUND : TK_TXN_UNAVAILABLE};
    op->cb(stored->found > 0 ? &stored->txn : &result, op->data);
    tk_engine_op_free(op->e, op);
}

static void on_txn(redisReply *reply, void *data)
{
    tk_txn_op_t *op = data;
    tk_txn_result_t result;
    tk_reservation_parse_txn(reply, &result);
    if (result.outcome == TK_TXN_NOT_FOUND) {
        if (tk_shop_read_transaction(op->e, op->txn, on_stored_transaction, op) == 0)
            return;
        result.outcome = TK_TXN_UNAVAILABLE;
    }
    op->cb(&result, op->data);
    tk_engine_op_free(op->e, op);
}

int tk_shop_txn(tk_engine_t *e, const tk_txn_request_t *rq, tk_txn_cb cb, void *data)
{
    tk_txn_op_t *op = tk_engine_op_alloc(e);
    *op = (tk_txn_op_t){.e = e, .cb = cb, .data = data};
    memcpy(op->txn, rq->txn, sizeof(op->txn));
    if (tk_reservation_txn(e->redis, op->txn, on_txn, op) != 0) {
        tk_engine_op_free(op->e, op);
        return -EAGAIN;
    }
    return 0;
}
