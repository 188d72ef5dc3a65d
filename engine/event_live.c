/*
 * The live-view calls: catalog lookup, a reference on the snapshot while Redis answers,
 * and decoding into scratch memory owned by the call (one heap block and, for stats, a
 * small pool), freed once the callback returns.
 */
#include "engine/event_live.h"
#include "engine/history.h"
#include "engine/inventory.h"

#include <errno.h>

typedef struct st_tk_live_call_t {
    tk_catalog_t *catalog; /* retained while Redis answers */
    const tk_event_t *event;
    union {
        tk_avail_cb avail;
        tk_stats_cb stats;
    } cb;
    void *data;
    int64_t left[]; /* avail: one per ticket type */
} tk_live_call_t;

/* Finds the event and starts a call (with room for its tickets-left counters when
 * with_left); NULL when the catalog has no such event. */
static tk_live_call_t *start_call(tk_engine_t *e, const tk_event_query_t *query, int with_left)
{
    tk_catalog_t *catalog = tk_engine_catalog(e);
    const tk_event_t *ev = catalog != NULL ? tk_catalog_find(catalog, query->event_id) : NULL;
    if (ev == NULL)
        return NULL;
    tk_live_call_t *call = h2o_mem_alloc(sizeof(*call) + (with_left ? sizeof(call->left[0]) * ev->ntypes : 0));
    *call = (tk_live_call_t){.catalog = catalog, .event = ev};
    tk_catalog_retain(catalog);
    return call;
}

static void finish_call(tk_live_call_t *call)
{
    tk_catalog_release(call->catalog);
    free(call);
}

static void on_avail(redisReply *reply, void *data)
{
    tk_live_call_t *call = data;
    tk_avail_result_t result = {.outcome = TK_LIVE_UNAVAILABLE, .event = call->event};
    if (reply != NULL && tk_inventory_parse_avail(reply, call->event, call->left) == 0) {
        result.outcome = TK_LIVE_OK;
        result.left = call->left;
    }
    call->cb.avail(&result, call->data);
    finish_call(call);
}

int tk_event_avail(tk_engine_t *e, const tk_event_query_t *query, tk_avail_cb cb, void *data)
{
    tk_live_call_t *call = start_call(e, query, 1);
    if (call == NULL)
        return -ENOENT;
    call->cb.avail = cb;
    call->data = data;
    if (tk_inventory_avail(e->redis, call->event, on_avail, call) != 0) {
        finish_call(call);
        return -EAGAIN;
    }
    return 0;
}

static void on_stats(redisReply *reply, void *data)
{
    tk_live_call_t *call = data;
    tk_stats_result_t result = {.outcome = TK_LIVE_UNAVAILABLE, .event = call->event};
    h2o_mem_pool_t scratch;
    h2o_mem_init_pool(&scratch);
    if (reply != NULL && tk_inventory_parse_stats(reply, &scratch, &result.stats) == 0 &&
        tk_history_parse(reply, result.stats.ntypes, &scratch, &result.demand) == 0) {
        result.outcome = TK_LIVE_OK;
    } else {
        result.stats = (tk_event_stats_t){0};
        result.demand = (tk_demand_t){0};
    }
    call->cb.stats(&result, call->data);
    h2o_mem_clear_pool(&scratch);
    finish_call(call);
}

int tk_event_stats(tk_engine_t *e, const tk_event_query_t *query, tk_stats_cb cb, void *data)
{
    tk_live_call_t *call = start_call(e, query, 0);
    if (call == NULL)
        return -ENOENT;
    call->cb.stats = cb;
    call->data = data;
    if (tk_history_stats(e->redis, call->event, on_stats, call) != 0) {
        finish_call(call);
        return -EAGAIN;
    }
    return 0;
}
