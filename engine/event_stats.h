/*
 * The live statistics of one event, as the Redis functions keep them (tk_stats):
 * totals over its ticket types, then each type in creation order. Plain values, so
 * both the decoder (engine/inventory) and the routes' API (engine/event_live) can
 * name them without depending on each other.
 */
#ifndef TK_EVENT_STATS_H
#define TK_EVENT_STATS_H

#include <h2o.h>
#include <stdint.h>

typedef struct st_tk_type_stats_t {
    h2o_iovec_t name;
    int64_t capacity, available, held, sold;
} tk_type_stats_t;

typedef struct st_tk_event_stats_t {
    int64_t capacity, available, held, sold, cancelled, expired, revenue_minor, lag_ms;
    size_t ntypes;
    tk_type_stats_t *types; /* in creation order, ntypes of them */
} tk_event_stats_t;

#endif
