/*
 * Reservation routes: POST (hold tickets), GET (read a reservation) and DELETE (cancel)
 * on /events/reservation/. Everything that can be refused without Redis is refused here,
 * in the contract's order (malformed → unknown event → unknown type → limit); then one
 * FCALL decides atomically. A type this thread recently saw sold out is answered from
 * the sold-out table without a round trip.
 */
#include "engine/reservation.h"
#include "engine/timefmt.h"
#include "engine/waitroom_token.h"
#include "http/client_addr.h"
#include "http/jsonr.h"
#include "http/lookup.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"
#include "http/session.h"

#include <stdio.h>
#include <string.h>

#define MAX_LINES 64

static void respond_unknown_type(h2o_req_t *req)
{
    tk_respond_error(req, 400, "Requested ticket type is not present in event ticket types",
                     "This event does not distribute tickets of this type");
}

static void respond_over_limit(h2o_req_t *req, int max_per_type)
{
    char message[96];
    snprintf(message, sizeof(message), "Can not order more than %d tickets of each type", max_per_type);
    tk_respond_error(req, 400, "Ordering more tickets than allowed!", message);
}

static void respond_insufficient(h2o_req_t *req, h2o_iovec_t type)
{
    char *message = h2o_mem_alloc_pool(&req->pool, type.len + 96);
    snprintf(message, type.len + 96, "This event does not have sufficient quantity of %.*s tickets", (int)type.len, type.base);
    tk_respond_error(req, 409, "Requested more tickets than available", message);
}

static void respond_not_found(h2o_req_t *req)
{
    tk_respond_error(req, 404, "Reservation does not exist", "There is no reservation with this id");
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
    char event[TK_UUID_LEN + 1];
    char rid[TK_UUID_LEN + 1];
} tk_reserve_op_t;

static void on_reserved(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_reserve_op_t *reserve = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    tk_reserve_result_t result;
    tk_reservation_parse_reserve(reply, &result);
    if (result.outcome == TK_RESERVE_INSUFFICIENT && result.available == 0)
        tk_soldout_mark(&reserve->thread->engine.soldout, reserve->event, result.type.base, result.type.len, tk_time_now_ms());
    if (req == NULL || tk_client_refused(req, reply))
        goto Exit;
    const tk_config_t *config = reserve->thread->config;
    switch (result.outcome) {
    case TK_RESERVE_OK: {
        char message[160];
        snprintf(message, sizeof(message),
                 "Reservation made successfully! Remember to finalize the payment within %d miuntes from now",
                 (config->hold_seconds + 59) / 60);
        tk_jsonw_t w;
        tk_jsonw_init(&w, &req->pool, 256);
        tk_jsonw_lit(&w, "{\"ok\":\"Reservation made successfully\",\"reservation_id\":\"");
        tk_jsonw_raw(&w, reserve->rid, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"message\":");
        tk_jsonw_str(&w, message, strlen(message));
        tk_jsonw_lit(&w, "}");
        tk_session_set_cookie(req, config, reserve->rid);
        tk_metrics_inc(&reserve->thread->metrics.holds_created);
        tk_respond_json(req, 201, &w);
        break;
    }
    case TK_RESERVE_NO_EVENT:
        tk_respond_error(req, 404, "Event does not exist", "There is no event with this id");
        break;
    case TK_RESERVE_PAST:
        tk_respond_error(req, 400, "Event already took place", "Tickets for past events are not sold");
        break;
    case TK_RESERVE_UNKNOWN_TYPE:
        respond_unknown_type(req);
        break;
    case TK_RESERVE_LIMIT:
        respond_over_limit(req, config->max_per_type);
        break;
    case TK_RESERVE_INSUFFICIENT:
        respond_insufficient(req, result.type);
        break;
    case TK_RESERVE_ADMISSION_USED:
        tk_metrics_inc(&reserve->thread->metrics.wr_refusals);
        tk_respond_error(req, 409, "Admission already used", "This admission already holds a reservation");
        break;
    case TK_RESERVE_EMPTY:
    case TK_RESERVE_BAD_AMOUNT:
        tk_respond_error(req, 400, "Invalid ticket amount", "amount must be a whole number from 1");
        break;
    case TK_RESERVE_EXISTS:
    case TK_RESERVE_FAILED:
        tk_respond_unavailable(req, "The reservation could not be made right now; try again");
        break;
    }
Exit:
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
    int64_t now = tk_time_now_ms();
    if (ev->date_ms <= now) {
        tk_respond_error(req, 400, "Event already took place", "Tickets for past events are not sold");
        return 0;
    }
    for (size_t i = 0; i < nlines; ++i) {
        if (tk_event_find_type(ev, lines[i].type.base, lines[i].type.len) == NULL) {
            respond_unknown_type(req);
            return 0;
        }
    }
    for (size_t i = 0; i < nlines; ++i) {
        if (lines[i].amount > thread->config->max_per_type) {
            respond_over_limit(req, thread->config->max_per_type);
            return 0;
        }
    }
    tk_wr_admission_t admission;
    if (tk_route_queue_gate(req, thread, ev, body, &admission) != 0)
        return 0;
    /* exact only for the first line: an earlier short line would be named first */
    if (tk_soldout_check(&thread->engine.soldout, ev->id, lines[0].type.base, lines[0].type.len, now)) {
        tk_metrics_inc(&thread->metrics.soldout_fast_path);
        respond_insufficient(req, lines[0].type);
        return 0;
    }

    tk_async_t *op = tk_async_start(req, sizeof(tk_reserve_op_t));
    tk_reserve_op_t *reserve = tk_async_data(op);
    reserve->thread = thread;
    memcpy(reserve->event, ev->id, sizeof(reserve->event));
    tk_uuid_v4_in_shard(reserve->rid, ev->id);
    if (tk_reservation_reserve(thread->engine.redis, ev, reserve->rid, (int64_t)thread->config->hold_seconds * 1000,
                               thread->config->max_per_type, lines, nlines, tk_client_fairuse(req, thread->config),
                               admission.ticket != 0 ? &admission : NULL, &req->pool, on_reserved, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
    }
    return 0;
}

/* The API shows a reservation whose payment is in flight as PENDING. */
static const char *public_status(const char *st)
{
    return strcmp(st, "PAYING") == 0 ? "PENDING" : st;
}

/* Reads the reservation blob (see lua/ticketd.lua) into the same shape PostgreSQL gives,
 * tickets in pool memory; -1 when it is not the expected shape. */
static int read_blob(h2o_req_t *req, h2o_iovec_t blob, tk_stored_reservation_t *view)
{
    char err[128];
    json_t *rec = tk_jsonr_parse_object(&req->pool, blob.base, blob.len, err, sizeof(err));
    json_t *event = json_object_get(rec, "e"), *tickets = json_object_get(rec, "t"), *status = json_object_get(rec, "st");
    if (rec == NULL || !json_is_string(status) || !json_is_array(tickets) ||
        tk_uuid_normalize(json_string_value(event), json_string_length(event), view->event) != 0)
        return -1;
    snprintf(view->status, sizeof(view->status), "%s", public_status(json_string_value(status)));
    view->created_ms = (int64_t)json_number_value(json_object_get(rec, "c"));
    view->until_ms = (int64_t)json_number_value(json_object_get(rec, "u"));
    view->ntickets = json_array_size(tickets);
    view->tickets = h2o_mem_alloc_pool(&req->pool, sizeof(*view->tickets) * (view->ntickets + 1));
    for (size_t i = 0; i < view->ntickets; ++i) {
        json_t *t = json_array_get(tickets, i);
        json_t *id = json_array_get(t, 0), *type = json_array_get(t, 1), *price = json_array_get(t, 2);
        tk_outbox_ticket_t *ticket = view->tickets + i;
        if (!json_is_string(type) || !json_is_number(price) || json_string_length(type) >= sizeof(ticket->type) ||
            tk_uuid_normalize(json_string_value(id), json_string_length(id), ticket->id) != 0)
            return -1;
        memcpy(ticket->type, json_string_value(type), json_string_length(type) + 1);
        ticket->price_minor = (int64_t)json_number_value(price);
    }
    return 0;
}

/* The API's reservation document: the reservation, one entry per ticket, the event. */
static void render_reservation(h2o_req_t *req, tk_thread_t *thread, const char *rid, const tk_stored_reservation_t *view)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 512 + view->ntickets * 200);
    tk_jsonw_lit(&w, "{\"reservation\":{\"id\":\"");
    tk_jsonw_raw(&w, rid, TK_UUID_LEN);
    tk_jsonw_lit(&w, "\",\"status\":\"");
    tk_jsonw_raw(&w, view->status, strlen(view->status));
    tk_jsonw_lit(&w, "\",\"pending_until\":");
    tk_jsonw_time(&w, view->until_ms);
    tk_jsonw_lit(&w, ",\"reservation_date\":");
    tk_jsonw_time(&w, view->created_ms);
    tk_jsonw_lit(&w, ",\"event\":\"");
    tk_jsonw_raw(&w, view->event, TK_UUID_LEN);
    tk_jsonw_lit(&w, "\"},\"tickets\":[");
    for (size_t i = 0; i < view->ntickets; ++i) {
        const tk_outbox_ticket_t *t = view->tickets + i;
        if (i != 0)
            tk_jsonw_lit(&w, ",");
        tk_jsonw_lit(&w, "{\"id\":\"");
        tk_jsonw_raw(&w, t->id, TK_UUID_LEN);
        tk_jsonw_lit(&w, "\",\"type\":");
        tk_jsonw_str(&w, t->type, strlen(t->type));
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

/* A reservation that has left Redis: answer from PostgreSQL. */
static void on_stored_reservation(tk_lookup_t *lookup, h2o_req_t *req, int found)
{
    if (found > 0)
        render_reservation(req, lookup->thread, lookup->id, &lookup->reservation);
    else if (found == 0)
        respond_not_found(req);
    else
        tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
}

typedef struct st_tk_reservation_op_t {
    tk_thread_t *thread;
    char rid[TK_UUID_LEN + 1];
} tk_reservation_op_t;

static void on_got(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    tk_reservation_op_t *get = tk_async_data(op);
    h2o_req_t *req = tk_async_req(op);
    h2o_iovec_t blob;
    if (req != NULL) {
        tk_stored_reservation_t view;
        int found = tk_reservation_parse_get(reply, &blob);
        if (found == 0)
            tk_lookup_reservation(req, get->thread, get->rid, on_stored_reservation);
        else if (found > 0 && read_blob(req, blob, &view) == 0)
            render_reservation(req, get->thread, get->rid, &view);
        else /* no reply, or a blob we cannot read: a failure, not a 404 */
            tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
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
    if (tk_reservation_get(thread->engine.redis, get->rid, on_got, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
    }
    return 0;
}

/* A reservation that has left Redis is finished: it cannot be cancelled any more. */
static void on_stored_for_cancel(tk_lookup_t *lookup, h2o_req_t *req, int found)
{
    if (found > 0)
        tk_respond_error(req, 409, "Reservation status is different than PENDING",
                         "This reservation can not be cancelled: it is already finished");
    else if (found == 0)
        respond_not_found(req);
    else
        tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
}

static void on_cancelled(redisReply *reply, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    h2o_iovec_t status;
    if (req != NULL) {
        switch (tk_reservation_parse_cancel(reply, &status)) {
        case TK_CANCEL_OK: {
            static const char body[] =
                "{\"ok\":\"Reservation cancelled\",\"message\":\"Reservation for the event was cancelled successfully\"}";
            tk_metrics_inc(&tk_thread_of(req)->metrics.holds_cancelled);
            tk_respond(req, 200, "application/json; charset=utf-8", h2o_iovec_init(body, sizeof(body) - 1));
            break;
        }
        case TK_CANCEL_NOT_FOUND:
            tk_lookup_reservation(req, tk_thread_of(req), tk_async_data(op), on_stored_for_cancel);
            break;
        case TK_CANCEL_STATE: {
            const char *why = h2o_memis(status.base, status.len, H2O_STRLIT("PAYING"))      ? "its payment is in progress"
                              : h2o_memis(status.base, status.len, H2O_STRLIT("COMPLETED")) ? "it is paid"
                                                                                            : "it is already cancelled";
            char message[128];
            snprintf(message, sizeof(message), "This reservation can not be cancelled: %s", why);
            tk_respond_error(req, 409, "Reservation status is different than PENDING", message);
            break;
        }
        case TK_CANCEL_FAILED:
            tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
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
        switch (tk_jsonr_uuid(body, "reservation_id", rid)) {
        case 0:
            named = 1;
            break;
        case -2:
            tk_respond_error(req, 400, "Invalid reservation_id", "reservation_id must be a reservation's UUID");
            return 0;
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
    tk_async_t *op = tk_async_start(req, TK_UUID_LEN + 1);
    memcpy(tk_async_data(op), rid, TK_UUID_LEN + 1);
    if (tk_reservation_cancel(thread->engine.redis, rid, on_cancelled, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Reservations are unavailable right now; try again");
    }
    return 0;
}
