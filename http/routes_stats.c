/*
 * GET /events/stats/?event_id=… (admin): the seed's ticket_counters plus the live
 * block — capacity, available, held, sold, cancelled, expired and revenue, overall and
 * per type, and the persistence lag — from the counters the Redis functions keep, in
 * one read-only call; nothing scans reservations.
 */
#include "engine/event_live.h"
#include "http/auth.h"
#include "http/query.h"
#include "http/respond.h"
#include "http/routes.h"

#include <errno.h>
#include <string.h>

#define STATS_UNAVAILABLE "Live statistics are unavailable right now; try again"

/* ,"turned_away":…,"payments_failed":…,"sold_out_at":…,"history":[…] inside "live" */
static void render_demand(tk_jsonw_t *w, const tk_demand_t *d)
{
    tk_jsonw_lit(w, ",\"turned_away\":");
    tk_jsonw_int(w, d->turned_away);
    tk_jsonw_lit(w, ",\"payments_failed\":");
    tk_jsonw_int(w, d->payments_failed);
    tk_jsonw_lit(w, ",\"sold_out_at\":");
    if (d->sold_out_ms > 0)
        tk_jsonw_time(w, d->sold_out_ms);
    else
        tk_jsonw_lit(w, "null");
    tk_jsonw_lit(w, ",\"history_step_seconds\":");
    tk_jsonw_int(w, TK_HISTORY_STEP_MS / 1000);
    tk_jsonw_lit(w, ",\"history\":[");
    for (size_t i = 0; i < d->nsamples; ++i) {
        const tk_history_sample_t *x = d->samples + i;
        if (i != 0)
            tk_jsonw_lit(w, ",");
        tk_jsonw_lit(w, "{\"at\":");
        tk_jsonw_time(w, x->at_ms);
        tk_jsonw_lit(w, ",\"sold\":");
        tk_jsonw_int(w, x->sold);
        tk_jsonw_lit(w, ",\"held\":");
        tk_jsonw_int(w, x->held);
        tk_jsonw_lit(w, ",\"available\":");
        tk_jsonw_int(w, x->available);
        tk_jsonw_lit(w, ",\"turned_away\":");
        tk_jsonw_int(w, x->turned_away);
        tk_jsonw_lit(w, ",\"payments_failed\":");
        tk_jsonw_int(w, x->payments_failed);
        tk_jsonw_lit(w, "}");
    }
    tk_jsonw_lit(w, "]");
}

static void render_stats(h2o_req_t *req, const tk_event_t *ev, const tk_event_stats_t *s, const tk_demand_t *d)
{
    tk_jsonw_t w;
    tk_jsonw_init(&w, &req->pool, 512 + s->ntypes * 256 + d->nsamples * 160);
    tk_jsonw_lit(&w, "{\"ticket_counters\":{\"all_tickets_sold\":");
    tk_jsonw_int(&w, s->sold);
    tk_jsonw_lit(&w, ",\"ticket_types\":{");
    for (size_t i = 0; i < s->ntypes; ++i) {
        if (i != 0)
            tk_jsonw_lit(&w, ",");
        tk_jsonw_str(&w, s->types[i].name.base, s->types[i].name.len);
        tk_jsonw_lit(&w, ":");
        tk_jsonw_int(&w, s->types[i].sold);
    }
    tk_jsonw_lit(&w, "}},\"event\":");
    tk_jsonw_raw(&w, ev->json.base, ev->json.len);
    tk_jsonw_lit(&w, ",\"live\":{\"capacity\":");
    tk_jsonw_int(&w, s->capacity);
    tk_jsonw_lit(&w, ",\"available\":");
    tk_jsonw_int(&w, s->available);
    tk_jsonw_lit(&w, ",\"held\":");
    tk_jsonw_int(&w, s->held);
    tk_jsonw_lit(&w, ",\"sold\":");
    tk_jsonw_int(&w, s->sold);
    tk_jsonw_lit(&w, ",\"cancelled\":");
    tk_jsonw_int(&w, s->cancelled);
    tk_jsonw_lit(&w, ",\"expired\":");
    tk_jsonw_int(&w, s->expired);
    tk_jsonw_lit(&w, ",\"revenue\":");
    tk_jsonw_money(&w, s->revenue_minor);
    tk_jsonw_lit(&w, ",\"ticket_types\":{");
    for (size_t i = 0; i < s->ntypes; ++i) {
        const tk_type_stats_t *t = s->types + i;
        if (i != 0)
            tk_jsonw_lit(&w, ",");
        tk_jsonw_str(&w, t->name.base, t->name.len);
        tk_jsonw_lit(&w, ":{\"capacity\":");
        tk_jsonw_int(&w, t->capacity);
        tk_jsonw_lit(&w, ",\"available\":");
        tk_jsonw_int(&w, t->available);
        tk_jsonw_lit(&w, ",\"held\":");
        tk_jsonw_int(&w, t->held);
        tk_jsonw_lit(&w, ",\"sold\":");
        tk_jsonw_int(&w, t->sold);
        tk_jsonw_lit(&w, "}");
    }
    tk_jsonw_lit(&w, "},\"persistence_lag_ms\":");
    tk_jsonw_int(&w, s->lag_ms);
    render_demand(&w, d);
    tk_jsonw_lit(&w, "}}");
    tk_respond_json(req, 200, &w);
}

static void on_stats(const tk_stats_result_t *result, void *data)
{
    tk_async_t *op = data;
    h2o_req_t *req = tk_async_req(op);
    if (req == NULL) {
        /* the client went away */
    } else if (result->outcome == TK_LIVE_OK) {
        render_stats(req, result->event, &result->stats, &result->demand);
    } else {
        tk_respond_unavailable(req, STATS_UNAVAILABLE);
    }
    tk_async_finish(op);
}

int tk_route_event_stats(h2o_req_t *req, tk_thread_t *thread)
{
    if (tk_auth_admin(req, thread->config) != 0)
        return 0;
    h2o_iovec_t v;
    tk_event_query_t query;
    int found = tk_query_get(tk_query_of(req), "event_id", &req->pool, &v);
    if (found <= 0 || tk_uuid_normalize(v.base, v.len, query.event_id) != 0) {
        tk_respond_error(req, 400, found == 0 ? "Missing event_id" : "Invalid event_id", "event_id must be an event's UUID");
        return 0;
    }
    tk_async_t *op = tk_async_start(req, 0);
    int rc = tk_event_stats(&thread->engine, &query, on_stats, op);
    if (rc != 0) {
        tk_async_finish(op);
        if (rc == -ENOENT)
            tk_respond_error(req, 404, "Event does not exist", "There is no event with this id");
        else
            tk_respond_unavailable(req, STATS_UNAVAILABLE);
    }
    return 0;
}
