/*
 * POST /admin/events: validates the new event on the loop thread, then hands the
 * writes to a worker: PostgreSQL first (the source of truth for the catalog), then the
 * event's inventory in Redis, then the catalog version that makes every process reload.
 * The reply is sent once this process serves the new catalog, so the client's next
 * GET /events/event/ lists the event.
 */
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/money.h"
#include "engine/pg.h"
#include "engine/refresher.h"
#include "engine/timefmt.h"
#include "engine/worker.h"
#include "http/auth.h"
#include "http/jsonr.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

#define MAX_NAME_CHARS 200
#define MAX_TYPE_CHARS 64
#define MAX_TYPES 64
#define MAX_AMOUNT 10000000

typedef enum en_tk_create_outcome_t { TK_CREATE_OK = 0, TK_CREATE_UNAVAILABLE } tk_create_outcome_t;

typedef struct st_tk_create_job_t {
    tk_job_t super;
    tk_async_t *op;
    tk_catalog_t *draft; /* holds the one new event */
    tk_create_outcome_t outcome;
} tk_create_job_t;

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

/* Checks the body and builds the draft event; on failure writes the reason and returns NULL. */
static tk_catalog_t *build_draft(json_t *body, char *err, size_t errsize)
{
    json_t *name = json_object_get(body, "name"), *date = json_object_get(body, "date"),
           *types = json_object_get(body, "ticket_types");
    int64_t date_ms;
    if (!valid_text(name, MAX_NAME_CHARS)) {
        snprintf(err, errsize, "name must be a non-empty string of at most %d characters", MAX_NAME_CHARS);
        return NULL;
    }
    if (!json_is_string(date) || tk_time_parse_rfc3339(json_string_value(date), json_string_length(date), &date_ms) != 0) {
        snprintf(err, errsize, "date must be an RFC 3339 date-time, e.g. 2026-12-31T20:00:00Z");
        return NULL;
    }
    if (date_ms <= tk_time_now_ms()) {
        snprintf(err, errsize, "date must be in the future");
        return NULL;
    }
    if (!json_is_array(types) || json_array_size(types) == 0 || json_array_size(types) > MAX_TYPES) {
        snprintf(err, errsize, "ticket_types must be a list of 1 to %d ticket types", MAX_TYPES);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(types); ++i) {
        json_t *t = json_array_get(types, i);
        json_t *type = json_object_get(t, "type"), *price = json_object_get(t, "price"), *amount = json_object_get(t, "amount");
        int64_t price_minor;
        if (!json_is_object(t) || !valid_text(type, MAX_TYPE_CHARS)) {
            snprintf(err, errsize, "ticket_types[%zu].type must be a non-empty string of at most %d characters", i, MAX_TYPE_CHARS);
            return NULL;
        }
        if (!json_is_number(price) || tk_money_from_double(json_number_value(price), &price_minor) != 0) {
            snprintf(err, errsize, "ticket_types[%zu].price must be a number from 0 with at most two decimals", i);
            return NULL;
        }
        if (!json_is_integer(amount) || json_integer_value(amount) < 0 || json_integer_value(amount) > MAX_AMOUNT) {
            snprintf(err, errsize, "ticket_types[%zu].amount must be a whole number from 0 to %d", i, MAX_AMOUNT);
            return NULL;
        }
        for (size_t j = 0; j < i; ++j) {
            if (json_equal(json_object_get(json_array_get(types, j), "type"), type)) {
                snprintf(err, errsize, "ticket type \"%s\" is listed twice", json_string_value(type));
                return NULL;
            }
        }
    }

    /* the draft lives on the heap: a worker reads it after this request may be gone */
    tk_catalog_t *draft = tk_catalog_new(0);
    char id[TK_UUID_LEN + 1];
    tk_uuid_v4(id);
    tk_catalog_add_event(draft, id, json_string_value(name), json_string_length(name), date_ms);
    for (size_t i = 0; i < json_array_size(types); ++i) {
        json_t *t = json_array_get(types, i), *type = json_object_get(t, "type");
        int64_t price_minor;
        tk_money_from_double(json_number_value(json_object_get(t, "price")), &price_minor);
        tk_uuid_v4(id);
        tk_catalog_add_type(draft, id, json_string_value(type), json_string_length(type), price_minor,
                            json_integer_value(json_object_get(t, "amount")));
    }
    tk_catalog_seal(draft);
    return draft;
}

typedef struct st_tk_insert_t {
    const tk_event_t *event;
    char err[512];
} tk_insert_t;

static int insert_event(PGconn *pg, void *arg)
{
    tk_insert_t *insert = arg;
    return tk_pg_insert_event(pg, insert->event, insert->err, sizeof(insert->err));
}

static void run_create(tk_job_t *job, tk_worker_conn_t *conn)
{
    tk_create_job_t *create = (tk_create_job_t *)job;
    const tk_event_t *ev = create->draft->events;
    tk_insert_t insert = {.event = ev};
    char err[512];
    create->outcome = TK_CREATE_UNAVAILABLE;
    if (tk_worker_run_pg(conn, insert_event, &insert, err, sizeof(err)) != 0) {
        tk_log_error("admin", "creating event %s failed: %s", ev->id, insert.err[0] != '\0' ? insert.err : err);
        return;
    }
    /* from here the event exists; Redis failures are repaired by the next catalog refresh */
    if (tk_inventory_init_events(conn->redis, ev, 1, err, sizeof(err)) != 0 ||
        tk_catalog_changed(conn->pg, conn->redis, err, sizeof(err)) != 0) {
        tk_log_error("admin", "event %s saved, but publishing it failed: %s", ev->id, err);
        return;
    }
    tk_log_info("admin", "event %s created with %zu ticket types", ev->id, ev->ntypes);
    create->outcome = TK_CREATE_OK;
}

static void on_create_done(tk_job_t *job)
{
    tk_create_job_t *create = (tk_create_job_t *)job;
    h2o_req_t *req = tk_async_req(create->op);
    if (req != NULL) {
        if (create->outcome == TK_CREATE_OK) {
            const tk_event_t *ev = create->draft->events;
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
    }
    tk_async_finish(create->op);
    tk_catalog_release(create->draft);
    free(create);
}

int tk_route_admin_create_event(h2o_req_t *req, tk_thread_t *thread)
{
    if (tk_auth_admin(req, thread->config) != 0)
        return 0;
    json_t *body = tk_jsonr_request_object(req);
    if (body == NULL)
        return 0;
    char err[256];
    tk_catalog_t *draft = build_draft(body, err, sizeof(err));
    if (draft == NULL) {
        tk_respond_error(req, 400, "Invalid event", err);
        return 0;
    }
    tk_create_job_t *create = h2o_mem_alloc(sizeof(*create));
    *create = (tk_create_job_t){.super = {.origin = &thread->job_receiver, .run = run_create, .done = on_create_done},
                                .op = tk_async_start(req, 0),
                                .draft = draft};
    if (tk_workers_submit(&create->super) != 0) {
        tk_async_finish(create->op);
        tk_catalog_release(draft);
        free(create);
        tk_respond_unavailable(req, "Too many admin requests in progress; try again");
    }
    return 0;
}
