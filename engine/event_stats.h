/*
 * The live statistics of one event, as the Redis functions keep them (tk_stats):
 * totals over its ticket types, then each type in creation order; and the demand
 * figures the organiser watches (engine/history.h keeps them). Plain values, so
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

#define TK_HISTORY_STEP_MS 5000 /* one sample per event every 5 s */
#define TK_HISTORY_SAMPLES 120  /* the last 10 minutes */

typedef struct st_tk_history_sample_t {
    int64_t at_ms, sold, held, available, turned_away, payments_failed;
} tk_history_sample_t;

typedef struct st_tk_demand_t {
    int64_t turned_away;     /* hold requests refused: not enough tickets */
    int64_t payments_failed; /* payments that ended in an error */
    int64_t sold_out_ms;     /* first instant nothing was left to hold; 0: not yet */
    size_t nsamples;
    tk_history_sample_t *samples; /* oldest first, caller's pool */
} tk_demand_t;

#endif
