/*
 * Admin changes to the catalog (POST /admin/events). Creating an event writes
 * PostgreSQL first (the source of truth for the catalog), then the event's inventory in
 * Redis, then bumps the catalog version that makes every process reload, and reloads
 * this process at once, so the caller's next listing shows the event. Those writes
 * block, so they run on a worker thread; the answer comes back on the calling loop.
 */
#ifndef TK_ADMIN_H
#define TK_ADMIN_H

#include "engine/catalog.h"
#include "engine/engine.h"

#include <h2o.h>
#include <stdint.h>

typedef struct st_tk_new_ticket_type_t {
    h2o_iovec_t name;
    int64_t price_minor;
    int64_t amount; /* capacity released for sale */
} tk_new_ticket_type_t;

/* A validated new event: a non-empty name, a future date, distinct type names. */
typedef struct st_tk_new_event_t {
    h2o_iovec_t name;
    int64_t date_ms;
    const tk_new_ticket_type_t *types;
    size_t ntypes;
} tk_new_event_t;

typedef enum en_tk_create_outcome_t {
    TK_CREATE_OK = 0,
    TK_CREATE_UNAVAILABLE, /* a store failed; the reason is logged */
} tk_create_outcome_t;

typedef struct st_tk_create_result_t {
    tk_create_outcome_t outcome;
    const tk_event_t *event; /* the event with the ids it was given */
} tk_create_result_t;

typedef void (*tk_create_cb)(const tk_create_result_t *result, void *data);

/* Copies the request, so its memory need not outlive the call. 0: cb runs once, on e's
 * loop. -EAGAIN: too many admin jobs queued; cb is not called. */
int tk_admin_create_event(tk_engine_t *e, const tk_new_event_t *request, tk_create_cb cb, void *data);

#endif
