/*
 * Live views of one event of the catalog, as the routes render them: the tickets left
 * of each type (POST /events/event/) and the admin statistics (GET /events/stats/).
 * Each is one Redis function call on the calling loop's connection; the engine finds
 * the event in the loop's catalog, keeps that snapshot alive while Redis answers,
 * decodes the reply and hands the route a typed result. A result and everything it
 * points to is valid during the callback only.
 *
 * Both calls follow libuv's rule: 0 means cb will run exactly once; a negative error
 * means it never will. -ENOENT: no event with that id in the catalog; -EAGAIN: Redis
 * cannot be asked right now (the connection is down).
 */
#ifndef TK_EVENT_LIVE_H
#define TK_EVENT_LIVE_H

#include "engine/catalog.h"
#include "engine/engine.h"
#include "engine/event_stats.h"

#include <stdint.h>

typedef struct st_tk_event_query_t {
    char event_id[TK_UUID_LEN + 1]; /* canonical lower-case uuid */
} tk_event_query_t;

typedef enum en_tk_live_outcome_t {
    TK_LIVE_OK = 0,
    TK_LIVE_UNAVAILABLE, /* Redis failed, or does not know the event yet */
} tk_live_outcome_t;

typedef struct st_tk_avail_result_t {
    tk_live_outcome_t outcome;
    const tk_event_t *event; /* the catalog's event */
    const int64_t *left;     /* OK: tickets left of event->types[i]; NULL otherwise */
} tk_avail_result_t;

typedef void (*tk_avail_cb)(const tk_avail_result_t *result, void *data);

int tk_event_avail(tk_engine_t *e, const tk_event_query_t *query, tk_avail_cb cb, void *data);

typedef struct st_tk_stats_result_t {
    tk_live_outcome_t outcome;
    const tk_event_t *event;
    tk_event_stats_t stats; /* OK: the counters the functions keep, totals and per type */
    tk_demand_t demand;     /* OK: turned-away holds, failed payments, sell-out, history */
} tk_stats_result_t;

typedef void (*tk_stats_cb)(const tk_stats_result_t *result, void *data);

int tk_event_stats(tk_engine_t *e, const tk_event_query_t *query, tk_stats_cb cb, void *data);

#endif
