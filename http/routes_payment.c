/*
 * Payment routes. PUT /events/reservation/ asks the engine to start paying a hold
 * (engine/shop.h: PENDING -> PAYING with a new transaction, the gateway charge and its
 * settlement all belong to the engine) and answers 202 with the transaction at once; a
 * repeated PUT while a payment is in flight gets the same transaction back. Its answer is
 * built whether or not the client is still there, so that an Idempotency-Key keeps it.
 * GET /transactions/list/ reads a transaction's status.
 */
#include "engine/payment.h"
#include "engine/shop.h"
#include "http/idempotency.h"
#include "http/jsonr.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

#define MAX_CARD_LEN 32

typedef struct st_tk_pay_op_t {
    char rid[TK_UUID_LEN + 1];
    tk_idem_hold_t *idem; /* the Idempotency-Key claim the payment runs under, or NULL */
} tk_pay_op_t;

static void answer_paid(tk_answer_t *a, h2o_mem_pool_t *pool, const char *rid, const tk_pay_result_t *result)
{
    switch (result->outcome) {
    case TK_PAY_STARTED: {
        tk_jsonw_t w;
        tk_jsonw_init(&w, pool, 256);
        tk_jsonw_lit(&w, "{\"ok\":\"Transaction started\",\"reservation_id\":\"");
        tk_jsonw_raw(&w, rid, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"transaction_id\":\"");
        tk_jsonw_raw(&w, result->txn, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"message\":\"Transaction started successfully. Now wait for payment confirmation\"}");
        tk_answer_json(a, 202, &w);
        break;
    }
    case TK_PAY_NOT_FOUND:
        tk_answer_error(a, pool, 404, "Reservation does not exist", "There is no reservation with this id");
        break;
    case TK_PAY_NOT_PAYABLE:
        tk_answer_error(a, pool, 409, "Reservation status is different than PENDING",
                        "Status of this reservation does not allow to process a payment for it");
        break;
    case TK_PAY_UNAVAILABLE:
        tk_answer_error(a, pool, 503, "Service unavailable", "Payments are unavailable right now; try again");
        break;
    }
}

typedef struct st_tk_paid_ctx_t {
    const char *rid;
    const tk_pay_result_t *result;
} tk_paid_ctx_t;

static void build_paid(tk_answer_t *a, h2o_mem_pool_t *pool, const void *ctx)
{
    const tk_paid_ctx_t *c = ctx;
    answer_paid(a, pool, c->rid, c->result);
}

static void on_paid(const tk_pay_result_t *result, void *data)
{
    tk_async_t *op = data;
    tk_pay_op_t *pay = tk_async_data(op);
    tk_paid_ctx_t ctx = {.rid = pay->rid, .result = result};
    tk_idempotency_deliver(tk_async_req(op), pay->idem, build_paid, &ctx);
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
    memcpy(pay->rid, rid, sizeof(pay->rid));
    pay->idem = tk_idempotency_hold(req);
    if (tk_shop_pay(&thread->engine, &(tk_pay_request_t){.rid = pay->rid, .card = card_number}, on_paid, op) != 0) {
        tk_answer_t answer;
        tk_answer_error(&answer, &req->pool, 503, "Service unavailable", "Payments are unavailable right now; try again");
        tk_respond_answer(req, &answer);
        if (pay->idem != NULL)
            tk_idempotency_finish(pay->idem, &answer);
        tk_async_finish(op);
    }
    return 0;
}

static void on_txn(const tk_txn_result_t *result, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    if (req != NULL) {
        switch (result->outcome) {
        case TK_TXN_FOUND: {
            tk_jsonw_t w;
            tk_jsonw_init(&w, &req->pool, 128 + result->error.len * 6);
            tk_jsonw_lit(&w, "{\"status\":");
            tk_jsonw_str(&w, result->status.base, result->status.len);
            tk_jsonw_lit(&w, ",\"transaction_error\":");
            if (result->error.len == 0)
                tk_jsonw_lit(&w, "null");
            else
                tk_jsonw_str(&w, result->error.base, result->error.len);
            tk_jsonw_lit(&w, "}");
            tk_respond_json(req, 200, &w);
            break;
        }
        case TK_TXN_NOT_FOUND:
            tk_respond_error(req, 404, "Transaction does not exist", "There is no transaction with this id");
            break;
        case TK_TXN_UNAVAILABLE:
            tk_respond_unavailable(req, "Transactions are unavailable right now; try again");
            break;
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
    tk_async_t *op = tk_async_start(req, 0);
    if (tk_shop_txn(&thread->engine, &(tk_txn_request_t){.txn = txn}, on_txn, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Transactions are unavailable right now; try again");
    }
    return 0;
}
