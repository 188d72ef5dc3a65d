/*
 * Payment routes. PUT /events/reservation/ moves a PENDING hold to PAYING with a new
 * transaction (one FCALL, compare-and-set), answers 202 at once and charges the card
 * through the gateway; the gateway's answer completes the payment with a second FCALL
 * (tk_pay_finish). A repeated PUT while a payment is in flight gets the same
 * transaction back and charges nothing. GET /transactions/list/ reads a transaction's
 * status from Redis while it is live and from PostgreSQL after.
 */
#include "engine/log.h"
#include "engine/payment.h"
#include "engine/reservation.h"
#include "http/jsonr.h"
#include "http/lookup.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

#define GATEWAY_TIMEOUT_MS 30000
#define FINISH_RETRY_MS 500
#define MAX_CARD_LEN 32

static void respond_not_payable(h2o_req_t *req)
{
    tk_respond_error(req, 409, "Reservation status is different than PENDING",
                     "Status of this reservation does not allow to process a payment for it");
}

static void respond_started(h2o_req_t *req, const char *rid, h2o_iovec_t txn)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 256);
    tk_jsonw_lit(&w, "{\"ok\":\"Transaction started\",\"reservation_id\":\"");
    tk_jsonw_raw(&w, rid, TK_UUID_LEN);
    tk_jsonw_lit(&w, "\",\"transaction_id\":");
    tk_jsonw_str(&w, txn.base, txn.len);
    tk_jsonw_lit(&w, ",\"message\":\"Transaction started successfully. Now wait for payment confirmation\"}");
    tk_respond_json(req, 202, &w);
}

/* A charge between the gateway's answer and Redis recording it. If Redis is away, the
 * answer is retried until it lands; the reservation stays PAYING meanwhile. */
typedef struct st_tk_charge_t {
    tk_thread_t *thread;
    char rid[TK_UUID_LEN + 1], txn[TK_UUID_LEN + 1];
    int approved;
    const char *error;
    h2o_timeout_entry_t retry;
} tk_charge_t;

static void record_answer(tk_charge_t *charge);

static void on_recorded(redisReply *reply, void *data)
{
    tk_charge_t *charge = data;
    /* No reply, or a transient error (LOADING after a restart, BUSY, READONLY): the
     * gateway's answer must not be lost, so try again. Only "ERR ticketd: …" — a call
     * the library refuses as malformed — is final. */
    if (reply == NULL || (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "ERR ticketd:", 12) != 0)) {
        if (reply != NULL)
            tk_log_warn("payment", "recording transaction %s: %s; retrying", charge->txn, reply->str);
        h2o_timeout_link(charge->thread->ctx.loop, &charge->thread->engine.retry_timeout, &charge->retry);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "OK") == 0)
        tk_metrics_inc(charge->approved ? &charge->thread->metrics.payments_completed : &charge->thread->metrics.payments_failed);
    if (reply->type == REDIS_REPLY_ERROR)
        tk_log_error("payment", "recording transaction %s failed: %s", charge->txn, reply->str);
    else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 && reply->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(reply->element[0]->str, "ERR") == 0)
        tk_log_warn("payment", "gateway answered transaction %s after it was given up on", charge->txn);
    __atomic_fetch_sub(&charge->thread->engine.charges_in_flight, 1, __ATOMIC_RELAXED);
    free(charge);
}

static void on_retry(h2o_timeout_entry_t *entry)
{
    record_answer(H2O_STRUCT_FROM_MEMBER(tk_charge_t, retry, entry));
}

static void record_answer(tk_charge_t *charge)
{
    if (tk_reservation_pay_finish(charge->thread->engine.redis, charge->rid, charge->txn, charge->approved, charge->error,
                                  on_recorded, charge) != 0)
        h2o_timeout_link(charge->thread->ctx.loop, &charge->thread->engine.retry_timeout, &charge->retry);
}

static void on_charged(tk_charge_outcome_t outcome, const char *error, void *data)
{
    tk_charge_t *charge = data;
    charge->approved = outcome == TK_CHARGE_APPROVED;
    charge->error = error;
    record_answer(charge);
}

typedef struct st_tk_pay_op_t {
    tk_thread_t *thread;
    char rid[TK_UUID_LEN + 1];
    char card[MAX_CARD_LEN + 1];
} tk_pay_op_t;

static void on_stored_for_payment(tk_lookup_t *lookup, h2o_req_t *req, int found)
{
    if (found > 0)
        respond_not_payable(req); /* finished and persisted */
    else if (found == 0)
        tk_respond_error(req, 404, "Reservation does not exist", "There is no reservation with this id");
    else
        tk_respond_unavailable(req, "Payments are unavailable right now; try again");
}

static void on_pay_started(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_pay_op_t *pay = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    tk_pay_start_result_t result;
    tk_reservation_parse_pay_start(reply, &result);
    if (result.outcome == TK_PAY_START_OK) {
        /* charge even if the client left: the transaction exists and must be settled */
        tk_charge_t *charge = h2o_mem_alloc(sizeof(*charge));
        *charge = (tk_charge_t){.thread = pay->thread, .retry = {.cb = on_retry}};
        __atomic_fetch_add(&pay->thread->engine.charges_in_flight, 1, __ATOMIC_RELAXED);
        memcpy(charge->rid, pay->rid, sizeof(charge->rid));
        snprintf(charge->txn, sizeof(charge->txn), "%.*s", (int)result.txn.len, result.txn.base);
        tk_gateway_t *gw = pay->thread->engine.gateway;
        if (gw->charge(gw, charge->txn, pay->card, result.amount_minor, on_charged, charge) != 0)
            on_charged(TK_CHARGE_FAILED, "Payment gateway unavailable", charge);
    }
    if (req != NULL) {
        switch (result.outcome) {
        case TK_PAY_START_OK:
        case TK_PAY_START_IN_FLIGHT:
            respond_started(req, pay->rid, result.txn);
            break;
        case TK_PAY_START_NOT_FOUND:
            tk_lookup_reservation(req, pay->thread, pay->rid, on_stored_for_payment);
            break;
        case TK_PAY_START_STATE:
            respond_not_payable(req);
            break;
        case TK_PAY_START_FAILED:
            tk_respond_unavailable(req, "Payments are unavailable right now; try again");
            break;
        }
    }
    tk_async_finish(op);
}

int tk_route_payment_start(h2o_req_t *req, tk_thread_t *thread)
{
    json_t *body = tk_jsonr_request_object(req);
    if (body == NULL)
        return 0;
    char rid[TK_UUID_LEN + 1];
    if (tk_jsonr_require_uuid(req, body, "reservation_id", rid) != 0)
        return 0;
    json_t *card = json_object_get(body, "card");
    const char *card_number = TK_CARD_DEFAULT;
    if (card != NULL) {
        size_t len = json_is_string(card) ? json_string_length(card) : 0;
        const char *digits = json_is_string(card) ? json_string_value(card) : "";
        int ok = len >= 1 && len <= MAX_CARD_LEN;
        for (size_t i = 0; ok && i < len; ++i)
            ok = digits[i] >= '0' && digits[i] <= '9';
        if (!ok) {
            tk_respond_error(req, 400, "Invalid card", "card must be a card number of up to 32 digits");
            return 0;
        }
        card_number = digits;
    }
    tk_async_t *op = tk_async_start(req, sizeof(tk_pay_op_t));
    tk_pay_op_t *pay = tk_async_data(op);
    pay->thread = thread;
    memcpy(pay->rid, rid, sizeof(pay->rid));
    snprintf(pay->card, sizeof(pay->card), "%s", card_number);
    char txn[TK_UUID_LEN + 1];
    tk_uuid_v4_in_shard(txn, rid);
    if (tk_reservation_pay_start(thread->engine.redis, rid, txn, GATEWAY_TIMEOUT_MS + thread->config->payment_latency_ms,
                                 on_pay_started, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Payments are unavailable right now; try again");
    }
    return 0;
}

static void respond_transaction(h2o_req_t *req, const char *status, size_t status_len, const char *error, size_t error_len)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 128 + error_len * 6);
    tk_jsonw_lit(&w, "{\"status\":");
    tk_jsonw_str(&w, status, status_len);
    tk_jsonw_lit(&w, ",\"transaction_error\":");
    if (error_len == 0)
        tk_jsonw_lit(&w, "null");
    else
        tk_jsonw_str(&w, error, error_len);
    tk_jsonw_lit(&w, "}");
    tk_respond_json(req, 200, &w);
}

static void on_stored_transaction(tk_lookup_t *lookup, h2o_req_t *req, int found)
{
    if (found > 0)
        respond_transaction(req, lookup->txn_status, strlen(lookup->txn_status), lookup->txn_error, strlen(lookup->txn_error));
    else if (found == 0)
        tk_respond_error(req, 404, "Transaction does not exist", "There is no transaction with this id");
    else
        tk_respond_unavailable(req, "Transactions are unavailable right now; try again");
}

typedef struct st_tk_txn_op_t {
    tk_thread_t *thread;
    char txn[TK_UUID_LEN + 1];
} tk_txn_op_t;

static void on_txn(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_txn_op_t *get = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    h2o_iovec_t status, error;
    if (req != NULL) {
        switch (tk_reservation_parse_txn(reply, &status, &error)) {
        case 1:
            respond_transaction(req, status.base, status.len, error.base, error.len);
            break;
        case 0:
            tk_lookup_transaction(req, get->thread, get->txn, on_stored_transaction);
            break;
        default:
            tk_respond_unavailable(req, "Transactions are unavailable right now; try again");
        }
    }
    tk_async_finish(op);
}

int tk_route_transaction_status(h2o_req_t *req, tk_thread_t *thread)
{
    h2o_iovec_t v;
    char txn[TK_UUID_LEN + 1];
    int found = tk_query_get(tk_query_of(req), "transaction_id", &req->pool, &v);
    if (found <= 0 || tk_uuid_normalize(v.base, v.len, txn) != 0) {
        tk_respond_error(req, 400, found == 0 ? "Missing transaction_id" : "Invalid transaction_id",
                         "transaction_id must be a transaction's UUID");
        return 0;
    }
    tk_async_t *op = tk_async_start(req, sizeof(tk_txn_op_t));
    tk_txn_op_t *get = tk_async_data(op);
    get->thread = thread;
    memcpy(get->txn, txn, sizeof(get->txn));
    if (tk_reservation_txn(thread->engine.redis, get->txn, on_txn, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Transactions are unavailable right now; try again");
    }
    return 0;
}
