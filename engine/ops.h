/*
 * Operations questions about this process, answered in the engine's words: is each
 * store reachable (GET /healthz). Redis is asked with a PING on the calling loop's
 * connection; PostgreSQL's answer is the catalog refresher's last check (at most about
 * a second old), so no request ever waits on a database round trip.
 */
#ifndef TK_OPS_H
#define TK_OPS_H

#include "engine/engine.h"

typedef enum en_tk_health_t { TK_HEALTH_OK = 0, TK_HEALTH_DOWN } tk_health_t;

typedef struct st_tk_health_result_t {
    tk_health_t redis, postgres;
} tk_health_result_t;

typedef void (*tk_health_cb)(const tk_health_result_t *result, void *data);

/* 0: cb runs once with both stores' health. -EAGAIN: Redis cannot be asked (its
 * connection is down, or some loop of the process has not connected yet: starting);
 * cb is not called, and tk_ops_health_now gives the answer. */
int tk_ops_health(tk_engine_t *e, tk_health_cb cb, void *data);
/* The answer without asking Redis: Redis down, PostgreSQL as last checked. */
void tk_ops_health_now(tk_health_result_t *out);

#endif
