/*
 * Reservation routes: POST (hold tickets), GET (read a reservation) and DELETE (cancel)
 * on /events/reservation/. Everything that can be refused from the request and the
 * catalog is refused here, in the contract's order (malformed → unknown event → unknown
 * type → limit); then the engine decides (engine/shop.h) and the typed result is
 * rendered. A hold's answer is built whether or not its client is still there, so that
 * an Idempotency-Key keeps it even when the client went away.
 */
#include "engine/shop.h"
#include "engine/timefmt.h"
#include "http/client_addr.h"
#include "http/idempotency.h"
#include "http/jsonr.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"
#include "http/session.h"

#include <stdio.h>
#include <string.h>

#define MAX_LINES 64

static void answer_unknown_type(tk_answer_t *a, h2o_mem_pool_t *pool)
{
    tk_answer_error(a, pool, 400, "Requested ticket type is not present in event ticket types",
                    "This event does not distribute tickets of this type");
}

static void answer_over_limit(tk_answer_t *a, h2o_mem_pool_t *pool, int max_per_type)
{
    char message[96];
    snprintf(message, sizeof(message), "Can not order more than %d tickets of each type", max_per_type);
    tk_answer_error(a, pool, 400, "Ordering more tickets than allowed!", message);
}

static void answer_insufficient(tk_answer_t *a, h2o_mem_pool_t *pool, h2o_iovec_t type)
{
    char *message = h2o_mem_alloc_pool(pool, type.len + 96);
    snprintf(message, type.len + 96, "This event does not have sufficient quantity of %.*s tickets", (int)type.len, type.base);
    tk_answer_error(a, pool, 409, "Requested more tickets than available", message);
}

static void respond_not_found(h2o_req_t *req)
{
    tk_respond_error(req, 404, "Reservation does not exist", "There is no reservation with this id");
}

static void respond_unavailable(h2o_req_t *req)
{
    tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
}

/* Reads and merges the "tickets" lines; answers the request and returns -1 when malformed. */
static int read_lines(h2o_req_t *req, json_t *tickets, tk_reserve_line_t *lines, size_t *nlines)
{
    if (!json_is_array(tickets)) {
        tk_respond_error(req, 400, "Invalid tickets", "tickets must be a list of {\"type\": <name>, \"amount\": <number>}");
        return -1;
    }
    if (json_array_size(tickets) == 0) {
        tk_respond_error(req, 400, "No tickets requested", "Request at least one ticket");
        return -1;
    }
    *nlines = 0;
    for (size_t i = 0; i < json_array_size(tickets); ++i) {
        json_t *line = json_array_get(tickets, i), *type = json_object_get(line, "type"), *amount = json_object_get(line, "amount");
        if (!json_is_object(line) || !json_is_string(type)) {
            tk_respond_error(req, 400, "Invalid tickets", "Each ticket line needs a \"type\" string and an \"amount\"");
            return -1;
        }
        if (!json_is_integer(amount) || json_integer_value(amount) < 1) {
            tk_respond_error(req, 400, "Invalid ticket amount", "amount must be a whole number from 1");
            return -1;
        }
        h2o_iovec_t name = h2o_iovec_init(json_string_value(type), json_string_length(type));
        size_t j = 0;
        while (j < *nlines && !h2o_memis(lines[j].type.base, lines[j].type.len, name.base, name.len))
            ++j;
        if (j == *nlines) {
            if (*nlines == MAX_LINES) {
                tk_respond_error(req, 400, "Invalid tickets", "Too many different ticket types in one reservation");
                return -1;
            }
            lines[(*nlines)++] = (tk_reserve_line_t){.type = name, .amount = 0};
        }
        /* saturating: anything this large is over the limit anyway */
        json_int_t add = json_integer_value(amount);
        lines[j].amount = add > INT32_MAX - lines[j].amount ? INT32_MAX : lines[j].amount + add;
    }
    return 0;
}

typedef struct st_tk_reserve_op_t {
    tk_thread_t *thread;
    tk_idem_hold_t *idem; /* the Idempotency-Key claim the hold runs under, or NULL */
} tk_reserve_op_t;

/* The answer to a hold, as the API words it. */
static void answer_reserved(tk_answer_t *a, h2o_mem_pool_t *pool, tk_thread_t *thread, const tk_reserve_result_t *result)
{
    const tk_config_t *config = thread->config;
    switch (result->outcome) {
    case TK_RESERVE_OK: {
        char message[160];
        snprintf(message, sizeof(message),
                 "Reservation made successfully! Remember to finalize the payment within %d miuntes from now",
                 (config->hold_seconds + 59) / 60);
        tk_jsonw_t w;
        tk_jsonw_init(&w, pool, 256);
        tk_jsonw_lit(&w, "{\"ok\":\"Reservation made successfully\",\"reservation_id\":\"");
        tk_jsonw_raw(&w, result->rid, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"message\":");
        tk_jsonw_str(&w, message, strlen(message));
        tk_jsonw_lit(&w, "}");
        tk_answer_json(a, 201, &w);
        a->cookie = tk_session_cookie(pool, config, result->rid);
        tk_metrics_inc(&thread->metrics.holds_created);
        break;
    }
    case TK_RESERVE_NO_EVENT:
        tk_answer_error(a, pool, 404, "Event does not exist", "There is no event with this id");
        break;
    case TK_RESERVE_PAST:
        tk_answer_error(a, pool, 400, "Event already took place", "Tickets for past events are not sold");
        break;
    case TK_RESERVE_UNKNOWN_TYPE:
        answer_unknown_type(a, pool);
        break;
    case TK_RESERVE_LIMIT:
        answer_over_limit(a, pool, config->max_per_type);
        break;
    case TK_RESERVE_INSUFFICIENT:
        answer_insufficient(a, pool, result->type);
        break;
    case TK_RESERVE_ADMISSION_USED:
        tk_metrics_inc(&thread->metrics.wr_refusals);
        tk_answer_error(a, pool, 409, "Admission already used", "This admission already holds a reservation");
        break;
    case TK_RESERVE_EMPTY:
    case TK_RESERVE_BAD_AMOUNT:
        tk_answer_error(a, pool, 400, "Invalid ticket amount", "amount must be a whole number from 1");
        break;
    case TK_RESERVE_TOO_MANY:
        tk_metrics_inc(&thread->metrics.fairuse_refusals);
        tk_answer_error(a, pool, 429, "Too many holds",
                        "This client holds too many reservations or asks too fast; try again shortly");
        a->retry_after = result->retry_after_s;
        break;
    case TK_RESERVE_PAUSED:
        tk_metrics_inc(&thread->metrics.overload_refusals);
        tk_answer_error(a, pool, 503, "Service unavailable", "Sales are paused while the database catches up; try again");
        a->retry_after = result->retry_after_s;
        break;
    case TK_RESERVE_OUT_OF_MEMORY:
        tk_metrics_inc(&thread->metrics.overload_refusals);
        tk_answer_error(a, pool, 503, "Service unavailable", "Sales are paused: the store is full; try again");
        break;
    case TK_RESERVE_EXISTS:
    case TK_RESERVE_FAILED:
        tk_answer_error(a, pool, 503, "Service unavailable", "The reservation could not be made right now; try again");
        break;
    }
}

typedef struct st_tk_reserved_ctx_t {
    tk_thread_t *thread;
    const tk_reserve_result_t *result;
} tk_reserved_ctx_t;

static void build_reserved(tk_answer_t *a, h2o_mem_pool_t *pool, const void *ctx)
{
    const tk_reserved_ctx_t *c = ctx;
    answer_reserved(a, pool, c->thread, c->result);
}

static void on_reserved(const tk_reserve_result_t *result, void *data)
{
    tk_async_t *op = data;
    tk_reserve_op_t *reserve = tk_async_data(op);
    tk_reserved_ctx_t ctx = {.thread = reserve->thread, .result = result};
    tk_idempotency_deliver(tk_async_req(op), reserve->idem, build_reserved, &ctx);
    tk_async_finish(op);
}

int tk_route_reservation_create(h2o_req_t *req, tk_thread_t *thread)
{
    json_t *body = tk_jsonr_request_object(req);
    if (body == NULL)
        return 0;
    char event_id[TK_UUID_LEN + 1];
    if (tk_jsonr_require_uuid(req, body, "event_id", event_id) != 0)
        return 0;
    tk_reserve_line_t lines[MAX_LINES];
    size_t nlines;
    if (read_lines(req, json_object_get(body, "tickets"), lines, &nlines) != 0)
        return 0;

    tk_catalog_t *catalog = tk_catalog_current(&thread->engine.catalog);
    const tk_event_t *ev = catalog != NULL ? tk_catalog_find(catalog, event_id) : NULL;
    if (ev == NULL) {
        tk_respond_error(req, 404, "Event does not exist", "There is no event with this id");
        return 0;
    }
    if (ev->date_ms <= tk_time_now_ms()) {
        tk_respond_error(req, 400, "Event already took place", "Tickets for past events are not sold");
        return 0;
    }
    tk_answer_t refusal;
    for (size_t i = 0; i < nlines; ++i) {
        if (tk_event_find_type(ev, lines[i].type.base, lines[i].type.len) == NULL) {
            answer_unknown_type(&refusal, &req->pool);
            tk_respond_answer(req, &refusal);
            return 0;
        }
    }
    for (size_t i = 0; i < nlines; ++i) {
        if (lines[i].amount > thread->config->max_per_type) {
            answer_over_limit(&refusal, &req->pool, thread->config->max_per_type);
            tk_respond_answer(req, &refusal);
            return 0;
        }
    }
    tk_wr_admission_t admission;
    if (tk_route_queue_gate(req, thread, ev, body, &admission) != 0)
        return 0;

    tk_netaddr_t client;
    tk_reserve_request_t rq = {.event = ev,
                               .lines = lines,
                               .nlines = nlines,
                               .client = tk_client_addr(req, thread->config, &client) == 0 ? &client : NULL,
                               .admission = admission.ticket != 0 ? &admission : NULL};
    tk_async_t *op = tk_async_start(req, sizeof(tk_reserve_op_t));
    tk_reserve_op_t *reserve = tk_async_data(op);
    reserve->thread = thread;
    reserve->idem = tk_idempotency_hold(req);
    if (tk_shop_reserve(&thread->engine, &rq, on_reserved, op) != 0) {
        tk_answer_error(&refusal, &req->pool, 503, "Service unavailable", "Reservations are unavailable right now; try again");
        tk_respond_answer(req, &refusal);
        if (reserve->idem != NULL)
            tk_idempotency_finish(reserve->idem, &refusal);
        tk_async_finish(op);
    }
    return 0;
}

/* The API's reservation document: the reservation, one entry per ticket, the event. */
static void render_reservation(h2o_req_t *req, tk_thread_t *thread, const char *rid, const tk_reservation_view_t *view)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 512 + view->ntickets * 200);
    tk_jsonw_lit(&w, "{\"reservation\":{\"id\":\"");
    tk_jsonw_raw(&w, rid, TK_UUID_LEN);
    tk_jsonw_lit(&w, "\",\"status\":\"");
    const char *status = tk_res_status_name(view->status);
    tk_jsonw_raw(&w, status, strlen(status));
    tk_jsonw_lit(&w, "\",\"pending_until\":");
    tk_jsonw_time(&w, view->until_ms);
    tk_jsonw_lit(&w, ",\"reservation_date\":");
    tk_jsonw_time(&w, view->created_ms);
    tk_jsonw_lit(&w, ",\"event\":\"");
    tk_jsonw_raw(&w, view->event, TK_UUID_LEN);
    tk_jsonw_lit(&w, "\"},\"tickets\":[");
    for (size_t i = 0; i < view->ntickets; ++i) {
        const tk_ticket_view_t *t = view->tickets + i;
        if (i != 0)
            tk_jsonw_lit(&w, ",");
        tk_jsonw_lit(&w, "{\"id\":\"");
        tk_jsonw_raw(&w, t->id.base, t->id.len);
        tk_jsonw_lit(&w, "\",\"type\":");
        tk_jsonw_str(&w, t->type.base, t->type.len);
        tk_jsonw_lit(&w, ",\"price\":");
        tk_jsonw_money(&w, t->price_minor);
        tk_jsonw_lit(&w, ",\"reservation\":\"");
        tk_jsonw_raw(&w, rid, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"event\":\"");
        tk_jsonw_raw(&w, view->event, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\"}");
    }
    tk_jsonw_lit(&w, "],\"event\":");
    tk_catalog_t *catalog = tk_catalog_current(&thread->engine.catalog);
    const tk_event_t *ev = catalog != NULL ? tk_catalog_find(catalog, view->event) : NULL;
    if (ev != NULL) {
        tk_jsonw_raw(&w, ev->json.base, ev->json.len);
    } else {
        tk_jsonw_lit(&w, "{\"id\":\"");
        tk_jsonw_raw(&w, view->event, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\"}");
    }
    tk_jsonw_lit(&w, "}");
    tk_respond_json(req, 200, &w);
}

typedef struct st_tk_reservation_op_t {
    tk_thread_t *thread;
    char rid[TK_UUID_LEN + 1];
} tk_reservation_op_t;

static void on_got(const tk_get_result_t *result, void *data)
{
    tk_async_t *op = data;
    tk_reservation_op_t *get = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    if (req != NULL) {
        switch (result->outcome) {
        case TK_GET_FOUND:
            render_reservation(req, get->thread, get->rid, result->reservation);
            break;
        case TK_GET_NOT_FOUND:
            respond_not_found(req);
            break;
        case TK_GET_UNAVAILABLE:
            respond_unavailable(req);
            break;
        }
    }
    tk_async_finish(op);
}

/* reservation_id from the query string; answers 400 and returns -1 when missing or malformed */
static int query_reservation_id(h2o_req_t *req, char *rid, int required)
{
    h2o_iovec_t v;
    int found = tk_query_get(tk_query_of(req), "reservation_id", &req->pool, &v);
    if (found == 0 && !required)
        return 0;
    if (found <= 0 || tk_uuid_normalize(v.base, v.len, rid) != 0) {
        tk_respond_error(req, 400, found == 0 ? "Missing reservation_id" : "Invalid reservation_id",
                         "reservation_id must be a reservation's UUID");
        return -1;
    }
    return 1;
}

int tk_route_reservation_read(h2o_req_t *req, tk_thread_t *thread)
{
    char rid[TK_UUID_LEN + 1];
    if (query_reservation_id(req, rid, 1) < 0)
        return 0;
    tk_async_t *op = tk_async_start(req, sizeof(tk_reservation_op_t));
    tk_reservation_op_t *get = tk_async_data(op);
    get->thread = thread;
    memcpy(get->rid, rid, sizeof(get->rid));
    if (tk_shop_get(&thread->engine, &(tk_get_request_t){.rid = get->rid}, on_got, op) != 0) {
        tk_async_finish(op);
        respond_unavailable(req);
    }
    return 0;
}

static void on_cancelled(const tk_cancel_result_t *result, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    static const char not_pending[] = "Reservation status is different than PENDING";
    if (req != NULL) {
        switch (result->outcome) {
        case TK_CANCEL_OK: {
            static const char body[] =
                "{\"ok\":\"Reservation cancelled\",\"message\":\"Reservation for the event was cancelled successfully\"}";
            tk_metrics_inc(&tk_thread_of(req)->metrics.holds_cancelled);
            tk_respond(req, 200, "application/json; charset=utf-8", h2o_iovec_init(body, sizeof(body) - 1));
            break;
        }
        case TK_CANCEL_NOT_FOUND:
            respond_not_found(req);
            break;
        case TK_CANCEL_PAYING:
            tk_respond_error(req, 409, not_pending, "This reservation can not be cancelled: its payment is in progress");
            break;
        case TK_CANCEL_COMPLETED:
            tk_respond_error(req, 409, not_pending, "This reservation can not be cancelled: it is paid");
            break;
        case TK_CANCEL_CANCELLED:
            tk_respond_error(req, 409, not_pending, "This reservation can not be cancelled: it is already cancelled");
            break;
        case TK_CANCEL_FINISHED:
            tk_respond_error(req, 409, not_pending, "This reservation can not be cancelled: it is already finished");
            break;
        case TK_CANCEL_UNAVAILABLE:
            respond_unavailable(req);
            break;
        }
    }
    tk_async_finish(op);
}

int tk_route_reservation_cancel(h2o_req_t *req, tk_thread_t *thread)
{
    char rid[TK_UUID_LEN + 1];
    int named = 0;
    /* the reservation is named by the body, else the query, else the signed cookie */
    if (req->entity.base != NULL && req->entity.len != 0) {
        json_t *body = tk_jsonr_request_object(req);
        if (body == NULL)
            return 0;
        /* present is binding: {"reservation_id": 5} must not fall through to the cookie */
        if (json_object_get(body, "reservation_id") != NULL) {
            if (tk_jsonr_uuid(body, "reservation_id", rid) != 0) {
                tk_respond_error(req, 400, "Invalid reservation_id", "reservation_id must be a reservation's UUID");
                return 0;
            }
            named = 1;
        }
    }
    if (!named && (named = query_reservation_id(req, rid, 0)) < 0)
        return 0;
    if (!named) {
        h2o_iovec_t cookie;
        if (!tk_session_find_cookie(req, &cookie)) {
            tk_respond_error(req, 400, "Missing reservation_id", "Name the reservation by reservation_id or the sessionid cookie");
            return 0;
        }
        if (tk_session_verify(thread->config, cookie.base, cookie.len, rid) != 0) {
            tk_respond_error(req, 403, "Invalid session", "The sessionid cookie is not valid");
            return 0;
        }
    }
    tk_async_t *op = tk_async_start(req, 0);
    if (tk_shop_cancel(&thread->engine, &(tk_cancel_request_t){.rid = rid}, on_cancelled, op) != 0) {
        tk_async_finish(op);
        respond_unavailable(req);
    }
    return 0;
}
