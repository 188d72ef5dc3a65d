/*
 * POST /admin/events: checks the body and turns it into the engine's typed request;
 * the engine writes the event (PostgreSQL, then Redis, then the catalog version) on a
 * worker and answers once this process serves the new catalog, so the client's next
 * GET /events/event/ lists the event.
 */
#include "engine/admin.h"
#include "engine/money.h"
#include "engine/timefmt.h"
#include "http/auth.h"
#include "http/jsonr.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

#define MAX_NAME_CHARS 200
#define MAX_TYPE_CHARS 64
#define MAX_TYPES 64
#define MAX_AMOUNT 10000000

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; ++i)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* A non-empty string of at most max_chars characters without control characters. */
static int valid_text(json_t *v, size_t max_chars)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return 0;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; i < len; ++i)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return utf8_chars(s, len) <= max_chars;
}

/* Checks the body and builds the request from it; on failure writes the reason and returns -1. */
static int build_request(json_t *body, h2o_mem_pool_t *pool, tk_new_event_t *out, char *err, size_t errsize)
{
    json_t *name = json_object_get(body, "name"), *date = json_object_get(body, "date"),
           *types = json_object_get(body, "ticket_types");
    int64_t date_ms;
    if (!valid_text(name, MAX_NAME_CHARS)) {
        snprintf(err, errsize, "name must be a non-empty string of at most %d characters", MAX_NAME_CHARS);
        return -1;
    }
    if (!json_is_string(date) || tk_time_parse_rfc3339(json_string_value(date), json_string_length(date), &date_ms) != 0) {
        snprintf(err, errsize, "date must be an RFC 3339 date-time, e.g. 2026-12-31T20:00:00Z");
        return -1;
    }
    if (date_ms <= tk_time_now_ms()) {
        snprintf(err, errsize, "date must be in the future");
        return -1;
    }
    if (!json_is_array(types) || json_array_size(types) == 0 || json_array_size(types) > MAX_TYPES) {
        snprintf(err, errsize, "ticket_types must be a list of 1 to %d ticket types", MAX_TYPES);
        return -1;
    }
    for (size_t i = 0; i < json_array_size(types); ++i) {
        json_t *t = json_array_get(types, i);
        json_t *type = json_object_get(t, "type"), *price = json_object_get(t, "price"), *amount = json_object_get(t, "amount");
        int64_t price_minor;
        if (!json_is_object(t) || !valid_text(type, MAX_TYPE_CHARS)) {
            snprintf(err, errsize, "ticket_types[%zu].type must be a non-empty string of at most %d characters", i, MAX_TYPE_CHARS);
            return -1;
        }
        if (!json_is_number(price) || tk_money_from_double(json_number_value(price), &price_minor) != 0) {
            snprintf(err, errsize, "ticket_types[%zu].price must be a number from 0 with at most two decimals", i);
            return -1;
        }
        if (!json_is_integer(amount) || json_integer_value(amount) < 0 || json_integer_value(amount) > MAX_AMOUNT) {
            snprintf(err, errsize, "ticket_types[%zu].amount must be a whole number from 0 to %d", i, MAX_AMOUNT);
            return -1;
        }
        for (size_t j = 0; j < i; ++j) {
            if (json_equal(json_object_get(json_array_get(types, j), "type"), type)) {
                snprintf(err, errsize, "ticket type \"%s\" is listed twice", json_string_value(type));
                return -1;
            }
        }
    }

    /* the engine copies the request at once: pointing into the body is enough */
    tk_new_ticket_type_t *lines = h2o_mem_alloc_pool(pool, sizeof(*lines) * json_array_size(types));
    for (size_t i = 0; i < json_array_size(types); ++i) {
        json_t *t = json_array_get(types, i), *type = json_object_get(t, "type");
        lines[i] = (tk_new_ticket_type_t){.name = h2o_iovec_init(json_string_value(type), json_string_length(type)),
                                          .amount = json_integer_value(json_object_get(t, "amount"))};
        tk_money_from_double(json_number_value(json_object_get(t, "price")), &lines[i].price_minor);
    }
    *out = (tk_new_event_t){.name = h2o_iovec_init(json_string_value(name), json_string_length(name)),
                            .date_ms = date_ms,
                            .types = lines,
                            .ntypes = json_array_size(types)};
    return 0;
}

static void on_created(const tk_create_result_t *result, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    if (req == NULL) {
        /* the client went away; the event exists all the same */
    } else if (result->outcome == TK_CREATE_OK) {
        const tk_event_t *ev = result->event;
        int64_t *left = h2o_mem_alloc_pool(&req->pool, sizeof(*left) * (ev->ntypes + 1));
        for (size_t i = 0; i < ev->ntypes; ++i)
            left[i] = ev->types[i].amount;
        tk_jsonw_t w;
        tk_jsonw_init(&w, &req->pool, 512);
        tk_render_event_detail(&w, ev, left);
        tk_respond_json(req, 201, &w);
    } else {
        tk_respond_unavailable(req, "The event could not be saved right now; try again");
    }
    tk_async_finish(op);
}

int tk_route_admin_create_event(h2o_req_t *req, tk_thread_t *thread)
{
    if (tk_auth_admin(req, thread->config) != 0)
        return 0;
    json_t *body = tk_jsonr_request_object(req);
    if (body == NULL)
        return 0;
    char err[256];
    tk_new_event_t request;
    if (build_request(body, &req->pool, &request, err, sizeof(err)) != 0) {
        tk_respond_error(req, 400, "Invalid event", err);
        return 0;
    }
    tk_async_t *op = tk_async_start(req, 0);
    if (tk_admin_create_event(&thread->engine, &request, on_created, op) != 0) {
        tk_async_finish(op);
        tk_respond_unavailable(req, "Too many admin requests in progress; try again");
    }
    return 0;
}
