/*
 * Catalog routes: GET /events/event/ (upcoming events, paginated, straight from the
 * in-memory snapshot) and POST /events/event/ (one event with live availability, one
 * engine call).
 */
#include "engine/event_live.h"
#include "engine/timefmt.h"
#include "http/jsonr.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"

#include <errno.h>

#define DEFAULT_PAGE_SIZE 10
#define MAX_PAGE_SIZE 100

/* Reads an optional whole-number query parameter; -1 when present but not a number. */
static int query_int(h2o_req_t *req, const char *name, int64_t fallback, int64_t *out)
{
    h2o_iovec_t v;
    int found = tk_query_get(tk_query_of(req), name, &req->pool, &v);
    if (found < 0)
        return -1;
    if (found == 0) {
        *out = fallback;
        return 0;
    }
    return tk_query_parse_int(v, out);
}

int tk_route_events_list(h2o_req_t *req, tk_thread_t *thread)
{
    int64_t page, size;
    if (query_int(req, "current_page", 1, &page) != 0 || query_int(req, "page_size", DEFAULT_PAGE_SIZE, &size) != 0 || size < 1) {
        tk_respond_error(req, 400, "Invalid pagination", "current_page and page_size must be whole numbers, page_size at least 1");
        return 0;
    }
    if (size > MAX_PAGE_SIZE)
        size = MAX_PAGE_SIZE;
    tk_catalog_t *catalog = tk_catalog_current(&thread->engine.catalog);
    size_t first_upcoming = catalog != NULL ? tk_catalog_first_upcoming(catalog, tk_time_now_ms()) : 0;
    size_t total = catalog != NULL ? catalog->nevents - first_upcoming : 0;
    tk_page_t p;
    tk_paginate(total, page, size, &p);

    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 64 + p.count * 160);
    tk_jsonw_lit(&w, "{\"events\":[");
    for (size_t i = 0; i < p.count; ++i) {
        if (i != 0)
            tk_jsonw_lit(&w, ",");
        h2o_iovec_t json = catalog->events[first_upcoming + p.first + i].json;
        tk_jsonw_raw(&w, json.base, json.len);
    }
    tk_jsonw_lit(&w, "],\"last_page\":");
    tk_jsonw_int(&w, (int64_t)p.last_page);
    tk_jsonw_lit(&w, "}");
    tk_respond_json(req, 200, &w);
    return 0;
}

void tk_render_event_detail(tk_jsonw_t *w, const tk_event_t *ev, const int64_t *left)
{
    tk_jsonw_lit(w, "{\"event\":");
    tk_jsonw_raw(w, ev->json.base, ev->json.len);
    tk_jsonw_lit(w, ",\"ticket_types\":[");
    for (size_t i = 0; i < ev->ntypes; ++i) {
        const tk_ticket_type_t *t = ev->types + i;
        if (i != 0)
            tk_jsonw_lit(w, ",");
        tk_jsonw_lit(w, "{\"id\":\"");
        tk_jsonw_raw(w, t->id, TK_UUID_LEN);
        tk_jsonw_lit(w, "\",\"type\":");
        tk_jsonw_str(w, t->name.base, t->name.len);
        tk_jsonw_lit(w, ",\"price\":");
        tk_jsonw_money(w, t->price_minor);
        tk_jsonw_lit(w, ",\"amount\":");
        tk_jsonw_int(w, t->amount);
        tk_jsonw_lit(w, ",\"event\":\"");
        tk_jsonw_raw(w, ev->id, TK_UUID_LEN);
        tk_jsonw_lit(w, "\",\"tickets_left\":");
        tk_jsonw_int(w, left[i]);
        tk_jsonw_lit(w, "}");
    }
    tk_jsonw_lit(w, "]}");
}

#define AVAIL_UNAVAILABLE "Live availability is unavailable right now; try again"

static void on_avail(const tk_avail_result_t *result, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    if (req == NULL) {
        /* the client went away */
    } else if (result->outcome != TK_LIVE_OK) {
        tk_respond_unavailable(req, AVAIL_UNAVAILABLE);
    } else {
        tk_jsonw_t w;
        tk_jsonw_init(&w, &req->pool, 256 + result->event->ntypes * 200);
        tk_render_event_detail(&w, result->event, result->left);
        tk_respond_json(req, 200, &w);
    }
    tk_async_finish(op);
}

int tk_route_event_detail(h2o_req_t *req, tk_thread_t *thread)
{
    json_t *body = tk_jsonr_request_object(req);
    if (body == NULL)
        return 0;
    tk_event_query_t query;
    if (tk_jsonr_require_uuid(req, body, "event_id", query.event_id) != 0)
        return 0;
    tk_async_t *op = tk_async_start(req, 0);
    int rc = tk_event_avail(&thread->engine, &query, on_avail, op);
    if (rc != 0) {
        tk_async_finish(op);
        if (rc == -ENOENT)
            tk_respond_error(req, 404, "Event does not exist", "There is no event with this id");
        else
            tk_respond_unavailable(req, AVAIL_UNAVAILABLE);
    }
    return 0;
}
