/*
 * The live-view calls: catalog lookup, a reference on the snapshot while Redis answers,
 * and decoding into scratch memory owned by the call (one heap block and, for stats, a
 * small pool), freed once the callback returns. Availability reads of one event share
 * a call: a read that finds one in flight on its loop waits for that answer instead of
 * sending its own. That answer is no older than the read: the loop's connection answers
 * in order, so a call still in flight was sent after every write this loop has already
 * answered, and sees them (read-your-writes holds for each client of the loop).
 */
#include "engine/event_live.h"
#include "engine/history.h"
#include "engine/inventory.h"

#include <errno.h>

typedef struct st_tk_live_call_t {
    tk_catalog_t *catalog; /* retained while Redis answers */
    const tk_event_t *event;
    tk_stats_cb cb;
    void *data;
} tk_live_call_t;

/* Finds the event and starts a call; NULL when the catalog has no such event. */
static tk_live_call_t *start_call(tk_engine_t *e, const tk_event_query_t *query)
{
    tk_catalog_t *catalog = tk_engine_catalog(e);
    const tk_event_t *ev = catalog != NULL ? tk_catalog_find(catalog, query->event_id) : NULL;
    if (ev == NULL)
        return NULL;
    tk_live_call_t *call = h2o_mem_alloc(sizeof(*call));
    *call = (tk_live_call_t){.catalog = catalog, .event = ev};
    tk_catalog_retain(catalog);
    return call;
}

static void finish_call(tk_live_call_t *call)
{
    tk_catalog_release(call->catalog);
    free(call);
}

/* ---- availability: one read in flight per event and loop, shared ---- */

typedef struct st_tk_avail_waiter_t {
    tk_avail_cb cb;
    void *data;
} tk_avail_waiter_t;

/* A tk_avail call in flight and everyone waiting on it: the first waiter in the block,
 * the others in more (heap). */
typedef struct st_tk_avail_flight_t {
    struct st_tk_avail_flight_t *next; /* the engine's flights */
    tk_engine_t *e;
    tk_catalog_t *catalog; /* retained while Redis answers */
    const tk_event_t *event;
    tk_avail_waiter_t first;
    H2O_VECTOR(tk_avail_waiter_t) more;
    int64_t left[]; /* one per ticket type */
} tk_avail_flight_t;

static void on_avail(redisReply *reply, void *data)
{
    tk_avail_flight_t *flight = data;
    /* leaves the list before anyone is answered: a read started by a callback takes a new flight */
    for (tk_avail_flight_t **p = &flight->e->avail_flights; *p != NULL; p = &(*p)->next) {
        if (*p == flight) {
            *p = flight->next;
            break;
        }
    }
    tk_avail_result_t result = {.outcome = TK_LIVE_UNAVAILABLE, .event = flight->event};
    if (reply != NULL && tk_inventory_parse_avail(reply, flight->event, flight->left) == 0) {
        result.outcome = TK_LIVE_OK;
        result.left = flight->left;
    }
    flight->first.cb(&result, flight->first.data);
    for (size_t i = 0; i < flight->more.size; ++i)
        flight->more.entries[i].cb(&result, flight->more.entries[i].data);
    free(flight->more.entries);
    tk_catalog_release(flight->catalog);
    free(flight);
}

int tk_event_avail(tk_engine_t *e, const tk_event_query_t *query, tk_avail_cb cb, void *data)
{
    tk_catalog_t *catalog = tk_engine_catalog(e);
    const tk_event_t *ev = catalog != NULL ? tk_catalog_find(catalog, query->event_id) : NULL;
    if (ev == NULL)
        return -ENOENT;
    for (tk_avail_flight_t *f = e->avail_flights; f != NULL; f = f->next) {
        if (f->event == ev) { /* the same event of the same catalog snapshot */
            h2o_vector_reserve(NULL, &f->more, f->more.size + 1);
            f->more.entries[f->more.size++] = (tk_avail_waiter_t){cb, data};
            return 0;
        }
    }
    tk_avail_flight_t *flight = h2o_mem_alloc(sizeof(*flight) + sizeof(flight->left[0]) * ev->ntypes);
    *flight = (tk_avail_flight_t){.e = e, .catalog = catalog, .event = ev, .first = {cb, data}};
    if (tk_inventory_avail(e->redis, ev, on_avail, flight) != 0) {
        free(flight);
        return -EAGAIN;
    }
    tk_catalog_retain(catalog);
    flight->next = e->avail_flights;
    e->avail_flights = flight;
    return 0;
}

/* ---- statistics ---- */

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
    call->cb(&result, call->data);
    h2o_mem_clear_pool(&scratch);
    finish_call(call);
}

int tk_event_stats(tk_engine_t *e, const tk_event_query_t *query, tk_stats_cb cb, void *data)
{
    tk_live_call_t *call = start_call(e, query);
    if (call == NULL)
        return -ENOENT;
    call->cb = cb;
    call->data = data;
    if (tk_history_stats(e->redis, call->event, on_stats, call) != 0) {
        finish_call(call);
        return -EAGAIN;
    }
    return 0;
}
