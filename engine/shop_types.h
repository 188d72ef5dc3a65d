/*
 * The shop's types: the typed requests and results of engine/shop.h, and the reservation
 * as the API shows it. They live apart from the calls so that the engine's own Redis
 * layer (engine/reservation.h) can decode into them without depending on the engine's
 * per-loop state.
 * Statuses are the API's: a reservation whose payment is in flight reads as PENDING
 * (lua/ticketd.lua, public_status, owns that rule).
 */
#ifndef TK_SHOP_TYPES_H
#define TK_SHOP_TYPES_H

#include "engine/catalog.h"
#include "engine/netaddr.h"
#include "engine/uuid.h"
#include "engine/waitroom_token.h"

#include <h2o.h>
#include <stdint.h>

/* ---- Reservations as the API shows them ---- */

typedef enum en_tk_res_status_t { TK_RES_PENDING = 0, TK_RES_COMPLETED, TK_RES_CANCELLED } tk_res_status_t;
/* "PENDING", "COMPLETED", "CANCELLED" */
const char *tk_res_status_name(tk_res_status_t status);
/* 0 and the status named by s (of len bytes); -1 when it names none */
int tk_res_status_parse(const char *s, size_t len, tk_res_status_t *out);

typedef struct st_tk_ticket_view_t {
    h2o_iovec_t id, type;
    int64_t price_minor;
} tk_ticket_view_t;

typedef struct st_tk_reservation_view_t {
    char event[TK_UUID_LEN + 1];
    tk_res_status_t status;
    int64_t created_ms, until_ms;
    const tk_ticket_view_t *tickets; /* one per ticket */
    size_t ntickets;
} tk_reservation_view_t;

/* ---- Reserve ---- */

typedef struct st_tk_reserve_line_t {
    h2o_iovec_t type;
    int64_t amount;
} tk_reserve_line_t;

typedef struct st_tk_reserve_request_t {
    const tk_event_t *event;        /* from the catalog; checked to be on sale by the caller */
    const tk_reserve_line_t *lines; /* merged by type, in request order */
    size_t nlines;
    const tk_netaddr_t *client;         /* for the fair-use limits; NULL when no client can be named */
    const tk_wr_admission_t *admission; /* the waiting-room admission used; NULL when the event's room is off */
} tk_reserve_request_t;

typedef enum en_tk_reserve_outcome_t {
    TK_RESERVE_OK = 0,
    TK_RESERVE_EMPTY,
    TK_RESERVE_BAD_AMOUNT,
    TK_RESERVE_NO_EVENT,
    TK_RESERVE_PAST,
    TK_RESERVE_EXISTS, /* the minted id was taken: reported like FAILED */
    TK_RESERVE_UNKNOWN_TYPE,
    TK_RESERVE_LIMIT,
    TK_RESERVE_INSUFFICIENT,
    TK_RESERVE_ADMISSION_USED, /* the waiting-room admission already holds a live or paid reservation */
    TK_RESERVE_TOO_MANY,       /* fair use: the client is over its holds or its rate (retry_after_s) */
    TK_RESERVE_PAUSED,         /* backpressure: the shard's outbox is over its limit (retry_after_s) */
    TK_RESERVE_OUT_OF_MEMORY,  /* Redis refused the write at maxmemory */
    TK_RESERVE_FAILED          /* Redis did not answer, or answered something else */
} tk_reserve_outcome_t;

typedef struct st_tk_reserve_result_t {
    tk_reserve_outcome_t outcome;
    char rid[TK_UUID_LEN + 1]; /* OK: the new reservation */
    h2o_iovec_t type;          /* the type named by UNKNOWN_TYPE, LIMIT, INSUFFICIENT */
    int64_t available;         /* INSUFFICIENT: tickets left of that type */
    int64_t created_ms, until_ms;
    int retry_after_s; /* TOO_MANY, PAUSED */
    int from_memory;   /* INSUFFICIENT answered from the sold-out table, without a round trip */
} tk_reserve_result_t;

typedef void (*tk_reserve_cb)(const tk_reserve_result_t *result, void *data);

/* ---- Read ---- */

typedef struct st_tk_get_request_t {
    const char *rid; /* canonical UUID */
} tk_get_request_t;

typedef enum en_tk_get_outcome_t { TK_GET_FOUND = 0, TK_GET_NOT_FOUND, TK_GET_UNAVAILABLE } tk_get_outcome_t;

typedef struct st_tk_get_result_t {
    tk_get_outcome_t outcome;
    const tk_reservation_view_t *reservation; /* FOUND */
} tk_get_result_t;

typedef void (*tk_get_cb)(const tk_get_result_t *result, void *data);

/* ---- Cancel ---- */

typedef struct st_tk_cancel_request_t {
    const char *rid;
} tk_cancel_request_t;

typedef enum en_tk_cancel_outcome_t {
    TK_CANCEL_OK = 0,
    TK_CANCEL_NOT_FOUND,
    TK_CANCEL_PAYING,    /* a payment is in flight */
    TK_CANCEL_COMPLETED, /* paid */
    TK_CANCEL_CANCELLED, /* already cancelled or expired */
    TK_CANCEL_FINISHED,  /* finished and gone from Redis (found in PostgreSQL) */
    TK_CANCEL_UNAVAILABLE
} tk_cancel_outcome_t;

typedef struct st_tk_cancel_result_t {
    tk_cancel_outcome_t outcome;
} tk_cancel_result_t;

typedef void (*tk_cancel_cb)(const tk_cancel_result_t *result, void *data);

/* ---- Pay ---- */

typedef struct st_tk_pay_request_t {
    const char *rid;
    const char *card; /* digits; the gateway decides what they mean */
} tk_pay_request_t;

typedef enum en_tk_pay_outcome_t {
    TK_PAY_STARTED = 0, /* a charge is under way: a new one, or the one already in flight */
    TK_PAY_NOT_FOUND,
    TK_PAY_NOT_PAYABLE, /* not PENDING: expired, cancelled or paid */
    TK_PAY_UNAVAILABLE
} tk_pay_outcome_t;

typedef struct st_tk_pay_result_t {
    tk_pay_outcome_t outcome;
    char txn[TK_UUID_LEN + 1]; /* STARTED */
    int in_flight;             /* STARTED: an earlier request's charge was found; nothing new is charged */
} tk_pay_result_t;

typedef void (*tk_pay_cb)(const tk_pay_result_t *result, void *data);

/* ---- Transaction status ---- */

typedef struct st_tk_txn_request_t {
    const char *txn;
} tk_txn_request_t;

typedef enum en_tk_txn_outcome_t { TK_TXN_FOUND = 0, TK_TXN_NOT_FOUND, TK_TXN_UNAVAILABLE } tk_txn_outcome_t;

typedef struct st_tk_txn_result_t {
    tk_txn_outcome_t outcome;
    h2o_iovec_t status; /* FOUND: "PENDING", "COMPLETED" or "ERROR" */
    h2o_iovec_t error;  /* FOUND: a message for a person, empty when none */
} tk_txn_result_t;

typedef void (*tk_txn_cb)(const tk_txn_result_t *result, void *data);

#endif
